package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vertigo-autoscaler/vertigo/host/api"
	"github.com/vertigo-autoscaler/vertigo/host/model"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

const (
	qemuBinary = "vertigo-qemu"
	qemuSystem = "qemu-system-x86_64"
	// guestBoot bounds a guest's boot under TCG, up to its agent's hello.
	guestBoot = 90 * time.Second
	// guestStopGrace is short because the guest's busybox init ignores
	// ACPI: any grace would be waited out in full.
	guestStopGrace = time.Millisecond
	// cleanupTimeout bounds stopping what a benchmark started; it runs even
	// when the benchmark's context has ended.
	cleanupTimeout = time.Minute
	// statusEvery is how often the host's status is polled while a change
	// is awaited: the resolution of every time measured through the API.
	statusEvery = 20 * time.Millisecond
	// migrationBandwidth and migrationDowntime are the host's defaults,
	// written into its config so that a raw QEMU migration can be given the
	// very same.
	migrationBandwidth = 1 << 30
	migrationDowntime  = 300 * time.Millisecond
)

// benchNodes are the logical nodes of this machine, for the host and the
// QEMU plugin alike; every benchmark VM starts on the first.
var benchNodes = []string{"node-a", "node-b"}

// guestSetup is what the QEMU benchmarks run, as absolute paths.
type guestSetup struct {
	bin, kernel, initrd string
}

// newGuestSetup checks that QEMU and the guest image are there: without
// them a benchmark could only fail later, less clearly.
func newGuestSetup(bin, guest string) (guestSetup, error) {
	if _, err := exec.LookPath(qemuSystem); err != nil {
		return guestSetup{}, fmt.Errorf("%s is missing (%v): apt-get install -y --no-install-recommends qemu-system-x86 qemu-utils busybox-static", qemuSystem, err)
	}
	binDir, err := filepath.Abs(bin)
	if err != nil {
		return guestSetup{}, err
	}
	guestDir, err := filepath.Abs(guest)
	if err != nil {
		return guestSetup{}, err
	}
	s := guestSetup{bin: binDir, kernel: filepath.Join(guestDir, "vmlinux"), initrd: filepath.Join(guestDir, "initramfs.cpio.gz")}
	for _, f := range []string{s.kernel, s.initrd} {
		if _, err := os.Stat(f); err != nil {
			return guestSetup{}, fmt.Errorf("the guest image is missing (%v): run `make guest`", err)
		}
	}
	return s, nil
}

// benchVM is a VM a benchmark declares, starting at its minimum size on
// the first node.
type benchVM struct {
	name   string
	bounds model.Bounds
}

func (v benchVM) spec() *pb.VMSpec {
	return &pb.VMSpec{Name: v.name, Node: benchNodes[0], Size: v.bounds.Min.Proto(), Bounds: v.bounds.Proto()}
}

// qemuHostConfig is a host configuration running vms in QEMU, its state
// and the VMs' run directory under dir, its API on addr.
func qemuHostConfig(s guestSetup, dir, addr string, vms []benchVM) string {
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir = %s\n\napi {\n  address = %s\n}\n", hclString(filepath.Join(dir, "state")), hclString(addr))
	fmt.Fprintf(&b, "\nloop {\n  interval            = %s\n  migration_bandwidth = %d\n  migration_downtime  = %s\n}\n",
		hclString(loopInterval.String()), migrationBandwidth, hclString(migrationDowntime.String()))
	for _, p := range []struct{ name, kind string }{{scalerBinary, "scaler"}, {placementBinary, "placement"}} {
		fmt.Fprintf(&b, "\nplugin %s {\n  kind = %s\n  path = %s\n}\n",
			hclString(p.name), hclString(p.kind), hclString(filepath.Join(s.bin, p.name)))
	}
	fmt.Fprintf(&b, "\nplugin %s {\n  kind = \"hypervisor\"\n  path = %s\n  config {\n"+
		"    run_dir = %s\n    kernel  = %s\n    initrd  = %s\n    nodes   = %s\n  }\n}\n",
		hclString(qemuBinary), hclString(filepath.Join(s.bin, qemuBinary)), hclString(filepath.Join(dir, "qemu")),
		hclString(s.kernel), hclString(s.initrd), hclString(strings.Join(benchNodes, ",")))
	// Room for every VM at its largest, twice over, so that neither a
	// growth nor a migration is ever refused for want of capacity.
	capacity := idleNode
	for _, v := range vms {
		capacity.VCPUMilli = max(capacity.VCPUMilli, 2*v.bounds.Max.VCPUMilli)
		capacity.MemoryBytes = max(capacity.MemoryBytes, 2*v.bounds.Max.MemoryBytes)
	}
	for _, n := range benchNodes {
		fmt.Fprintf(&b, "\nnode %s {\n  vcpus     = %s\n  memory    = %d\n  watermark = %g\n}\n",
			hclString(n), vcpus(capacity.VCPUMilli), capacity.MemoryBytes, idleWatermark)
	}
	for _, v := range vms {
		bo := v.bounds
		fmt.Fprintf(&b, "\nvm %s {\n  node        = %s\n  min_vcpus   = %s\n  max_vcpus   = %s\n  unit_vcpus  = %s\n"+
			"  min_memory  = %d\n  max_memory  = %d\n  unit_memory = %d\n}\n",
			hclString(v.name), hclString(benchNodes[0]), vcpus(bo.Min.VCPUMilli), vcpus(bo.Max.VCPUMilli), vcpus(bo.Unit.VCPUMilli),
			bo.Min.MemoryBytes, bo.Max.MemoryBytes, bo.Unit.MemoryBytes)
	}
	return b.String()
}

// qemuHost is a `vertigo run` subprocess whose VMs run in QEMU.
type qemuHost struct {
	proc   *hostProcess
	api    *api.Client
	setup  guestSetup
	runDir string
	stderr io.Writer
}

// startQEMUHost runs a host with vms in dir and waits until each VM runs
// and its guest has reported. On error everything it started is stopped.
func startQEMUHost(ctx context.Context, s guestSetup, dir string, vms []benchVM, stderr io.Writer) (*qemuHost, error) {
	// Port 0: the host picks a free port and records it in its state.
	cfg := filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(cfg, []byte(qemuHostConfig(s, dir, "127.0.0.1:0", vms)), 0o600); err != nil {
		return nil, err
	}
	proc, err := startHost(filepath.Join(s.bin, hostBinary), cfg, filepath.Join(dir, "host.log"))
	if err != nil {
		return nil, err
	}
	h := &qemuHost{proc: proc, api: &api.Client{}, setup: s, runDir: filepath.Join(dir, "qemu"), stderr: stderr}
	if err := h.ready(ctx, filepath.Join(dir, "state"), vms); err != nil {
		return nil, errors.Join(err, h.close())
	}
	return h, nil
}

// ready waits for the API and
// for a report from every guest.
func (h *qemuHost) ready(ctx context.Context, stateDir string, vms []benchVM) error {
	addr, err := h.proc.waitHealthy(ctx, api.AddressPath(stateDir))
	if err != nil {
		return err
	}
	h.api.Addr = addr
	token, err := os.ReadFile(filepath.Join(stateDir, "api-token"))
	if err != nil {
		return err
	}
	h.api.Token = strings.TrimSpace(string(token))
	err = h.watch(ctx, guestBoot, func(st api.Status, _ time.Time) (bool, error) {
		for _, v := range vms {
			vm, ok := vmNamed(st, v.name)
			switch {
			case !ok:
				return false, fmt.Errorf("the host does not list vm %q", v.name)
			case vm.Phase == model.PhaseFailed:
				return false, fmt.Errorf("vm %q failed: %s%s", v.name, vm.Message, h.proc.logTail())
			case vm.Phase != model.PhaseRunning:
				return false, nil
			}
			if _, reported := st.Usage[v.name]; !reported {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the guests to report: %w", err)
	}
	return nil
}

// watch polls the status every statusEvery and hands it to f with the time
// it arrived, until f is done or fails, timeout passes, ctx ends or the
// host exits.
func (h *qemuHost) watch(ctx context.Context, timeout time.Duration, f func(api.Status, time.Time) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(statusEvery)
	defer tick.Stop()
	for {
		st, err := h.api.Status(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("still waiting after %v: %w%s", timeout, err, h.proc.logTail())
			}
			return err
		}
		if done, err := f(st, time.Now()); err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("still waiting after %v%s", timeout, h.proc.logTail())
		case <-h.proc.done:
			return h.proc.exited()
		case <-tick.C:
		}
	}
}

// close stops the host, then the VMs it leaves running by design.
func (h *qemuHost) close() error {
	return errors.Join(h.proc.stop(), stopGuests(h.setup, h.runDir, h.stderr))
}

func vmNamed(st api.Status, name string) (model.VM, bool) {
	for _, vm := range st.VMs {
		if vm.Name == name {
			return vm, true
		}
	}
	return model.VM{}, false
}

// launchQEMU starts the QEMU plugin on runDir, which re-attaches to the
// VMs found there.
func launchQEMU(ctx context.Context, s guestSetup, runDir string, stderr io.Writer) (*sdk.Launched, error) {
	p, err := sdk.Launch(sdk.LaunchOptions{
		Path:   filepath.Join(s.bin, qemuBinary),
		Logger: hclog.New(&hclog.LoggerOptions{Name: qemuBinary, Output: stderr, Level: hclog.Error}),
	})
	if err != nil {
		return nil, err
	}
	config, err := json.Marshal(map[string]string{
		"run_dir": runDir, "kernel": s.kernel, "initrd": s.initrd, "nodes": strings.Join(benchNodes, ","),
	})
	if err == nil {
		var version uint32
		if _, version, err = p.Identify(ctx, qemuBinary, pb.Kind_KIND_HYPERVISOR); err == nil {
			err = p.Configure(ctx, config, version)
		}
	}
	if err != nil {
		p.Kill()
		return nil, fmt.Errorf("%s: %w", qemuBinary, err)
	}
	return p, nil
}

// stopGuests stops every VM in runDir through a plugin of its own; a QEMU
// of runDir still alive afterwards is killed.
func stopGuests(s guestSetup, runDir string, stderr io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	err := func() error {
		p, err := launchQEMU(ctx, s, runDir, stderr)
		if err != nil {
			return err
		}
		defer p.Kill()
		return stopAll(ctx, p.Client)
	}()
	if err != nil {
		err = fmt.Errorf("stopping the VMs of %s: %w", runDir, err)
	}
	return errors.Join(err, killQEMUs(runDir))
}

// stopAll stops every VM the plugin knows.
func stopAll(ctx context.Context, c *sdk.Client) error {
	list, err := c.Hypervisor.ListVMs(ctx, &pb.ListVMsRequest{})
	if err != nil {
		return err
	}
	var errs []error
	for _, vm := range list.GetVms() {
		if _, err := c.Hypervisor.StopVM(ctx, &pb.StopVMRequest{Name: vm.GetName(), GraceNanos: int64(guestStopGrace)}); err != nil {
			errs = append(errs, fmt.Errorf("vm %s: %w", vm.GetName(), err))
		}
	}
	return errors.Join(errs...)
}

// killQEMUs kills the QEMUs whose pid files are under runDir. A pid is
// only trusted while its command line names runDir: it may have been
// reused.
func killQEMUs(runDir string) error {
	pidFiles, err := filepath.Glob(filepath.Join(runDir, "*", "pid"))
	if err != nil {
		return err
	}
	var killed []string
	for _, f := range pidFiles {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !strings.Contains(string(cmdline), runDir) {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed = append(killed, strconv.Itoa(pid))
		}
	}
	if len(killed) > 0 {
		return fmt.Errorf("killed QEMU processes still running from %s: %s", runDir, strings.Join(killed, ", "))
	}
	return nil
}
