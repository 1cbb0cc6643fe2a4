package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/vm"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
	"github.com/vertigo-autoscaler/vertigo/sdk/sdktest"
)

const mib = 1 << 20

// guestImage returns the guest kernel and initramfs, failing (not
// skipping) the test when they or QEMU are missing: these tests are the
// plugin's proof, and a machine without QEMU cannot give it.
func guestImage(t *testing.T) (kernel, initrd string) {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Fatalf("qemu-system-x86_64 is missing (%v): apt-get install -y --no-install-recommends qemu-system-x86 qemu-utils busybox-static", err)
	}
	dir, err := filepath.Abs("../../build/guest")
	require.NoError(t, err)
	kernel, initrd = filepath.Join(dir, "vmlinux"), filepath.Join(dir, "initramfs.cpio.gz")
	for _, f := range []string{kernel, initrd} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("the guest image is missing (%v): run `make guest` (plugins/hypervisor-qemu/guest/build.sh build/guest)", err)
		}
	}
	return kernel, initrd
}

// runDir is a short directory (unix socket paths are limited to 107
// bytes) whose QEMUs are killed when the test ends, whatever happened.
func runDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vq")
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			logConsoles(t, dir)
		}
		pids, _ := filepath.Glob(filepath.Join(dir, "*", "pid"))
		for _, f := range pids {
			b, _ := os.ReadFile(f)
			var pid int
			if _, err := fmt.Sscan(string(b), &pid); err != nil {
				continue
			}
			// Only a QEMU of this test: the pid may have been reused.
			if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.Contains(string(cmd), dir) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		os.RemoveAll(dir)
	})
	return dir
}

// logConsoles logs the end of every guest console under run, for a test
// that failed.
func logConsoles(t *testing.T, run string) {
	logs, _ := filepath.Glob(filepath.Join(run, "*", "serial.log"))
	for _, f := range logs {
		b, _ := os.ReadFile(f)
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		t.Logf("%s, last lines:\n%s", f, strings.Join(lines[max(0, len(lines)-20):], "\n"))
	}
}

// configJSON is the plugin configuration the tests use.
func configJSON(t *testing.T, run string) []byte {
	t.Helper()
	return configWith(t, run, nil)
}

// configWith is configJSON with more attributes.
func configWith(t *testing.T, run string, more map[string]any) []byte {
	t.Helper()
	kernel, initrd := guestImage(t)
	cfg := map[string]any{
		"run_dir": run, "kernel": kernel, "initrd": initrd,
		"stop_grace": int64(time.Second), "agent_timeout": int64(90 * time.Second),
	}
	maps.Copy(cfg, more)
	b, err := json.Marshal(cfg)
	require.NoError(t, err)
	return b
}

// diskImages is an images directory whose image "disk" is the guest image
// with a small raw root filesystem: the VM gets a disk, which its init
// leaves alone.
func diskImages(t *testing.T) string {
	t.Helper()
	kernel, initrd := guestImage(t)
	dir := filepath.Join(t.TempDir(), "guest-disk")
	require.NoError(t, os.Mkdir(dir, 0o755))
	require.NoError(t, os.Symlink(kernel, filepath.Join(dir, "vmlinux")))
	require.NoError(t, os.Symlink(initrd, filepath.Join(dir, "initramfs.cpio.gz")))
	rootfs, err := os.Create(filepath.Join(dir, "rootfs.img"))
	require.NoError(t, err)
	require.NoError(t, rootfs.Truncate(64*mib))
	require.NoError(t, rootfs.Close())
	return filepath.Dir(dir)
}

// inProcess serves a new plugin in the test's process; setup runs before
// it is configured.
func inProcess(t *testing.T, config []byte, setup ...func(*plugin)) (*plugin, *sdk.Client) {
	t.Helper()
	p := newPlugin()
	for _, f := range setup {
		f(p)
	}
	c := sdktest.Connect(t, p)
	require.NoError(t, c.Configure(context.Background(), config, sdk.APIVersions[0]))
	return p, c
}

func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func testSpec(name string) *pb.VMSpec {
	return &pb.VMSpec{
		Name: name, Node: "node-a",
		Size: &pb.Size{VcpuMilli: 1000, MemoryBytes: 512 * mib},
		Bounds: &pb.Bounds{
			Min:  &pb.Size{VcpuMilli: 1000, MemoryBytes: 512 * mib},
			Max:  &pb.Size{VcpuMilli: 4000, MemoryBytes: 2048 * mib},
			Unit: &pb.Size{VcpuMilli: 1000, MemoryBytes: 128 * mib},
		},
	}
}

func handleOf(t *testing.T, st *pb.VMStatus) vm.Handle {
	t.Helper()
	h, err := vm.DecodeHandle(st.GetHandle())
	require.NoError(t, err)
	return h
}

func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	// A zombie has exited: it only waits for a parent to reap it.
	return err == nil && !strings.Contains(string(stat), ") Z ")
}

// reports follows a GuestReports stream.
type reports struct {
	c chan *pb.GuestReport
}

func follow(t *testing.T, c *sdk.Client, names ...string) *reports {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := c.Hypervisor.GuestReports(ctx, &pb.GuestReportsRequest{Names: names})
	require.NoError(t, err)
	r := &reports{c: make(chan *pb.GuestReport, 1024)}
	go func() {
		defer close(r.c)
		for {
			m, err := stream.Recv()
			if err != nil {
				return
			}
			r.c <- m
		}
	}()
	return r
}

// sample is one metrics sample of a report.
type sample struct {
	onlineMilli int64
	online      uint64
	used        uint64
	uptime      time.Duration
	load1       float64
}

// waitSample returns the first sample for which ok is true.
func (r *reports) waitSample(t *testing.T, d time.Duration, what string, ok func(sample) bool) sample {
	t.Helper()
	deadline := time.After(d)
	var last sample
	for {
		select {
		case m, open := <-r.c:
			require.True(t, open, "the report stream ended while waiting for %s", what)
			w := m.GetMetrics()
			if len(w.GetTUnixNano()) == 0 {
				continue
			}
			for _, col := range []int{len(w.GetLoad1()), len(w.GetLoad5()), len(w.GetCpuPressureAvg10()), len(w.GetMemoryPressureAvg10()), len(w.GetMemoryUsedBytes()), len(w.GetMemoryCachedBytes()), len(w.GetOnlineVcpuMilli()), len(w.GetOnlineMemoryBytes()), len(w.GetUptimeNanos())} {
				require.Equal(t, 1, col, "every column has the one sample")
			}
			last = sample{onlineMilli: w.GetOnlineVcpuMilli()[0], online: w.GetOnlineMemoryBytes()[0], used: w.GetMemoryUsedBytes()[0], uptime: time.Duration(w.GetUptimeNanos()[0]), load1: w.GetLoad1()[0]}
			if ok(last) {
				return last
			}
		case <-deadline:
			t.Fatalf("no sample with %s within %v; last: %+v", what, d, last)
		}
	}
}

// waitEvent returns the first event of type typ.
func (r *reports) waitEvent(t *testing.T, d time.Duration, typ pb.GuestEventType) *pb.GuestEvent {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m, open := <-r.c:
			require.True(t, open, "the report stream ended while waiting for a %s event", typ)
			for _, e := range m.GetEvents() {
				if e.GetType() == typ {
					return e
				}
			}
		case <-deadline:
			t.Fatalf("no %s event within %v", typ, d)
		}
	}
}

// buildPlugin builds the plugin binary, as the host runs it.
func buildPlugin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), pluginName)
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))
	return bin
}
