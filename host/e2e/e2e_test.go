// Package e2e runs the whole product as an operator does: the built
// binaries, the host as its own process, real QEMU guests under TCG. It
// needs QEMU and the guest image (`make guest`) and fails without them.
package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/api"
	"github.com/vertigo-autoscaler/vertigo/host/echoprobe"
	"github.com/vertigo-autoscaler/vertigo/host/model"
)

var (
	bin   string // built binaries
	guest string // the guest image
)

func TestMain(m *testing.M) {
	root, err := filepath.Abs("../..")
	if err != nil {
		panic(err)
	}
	guest = filepath.Join(root, "build", "guest")
	dir, err := os.MkdirTemp("", "vertigo-e2e")
	if err != nil {
		panic(err)
	}
	bin = dir
	for name, pkg := range map[string]string{
		"vertigo": "./host/cmd/vertigo", "vertigo-scaler": "./plugins/scaler",
		"vertigo-placement": "./plugins/placement", "vertigo-qemu": "./plugins/hypervisor-qemu",
		"vertigo-bridge": "./plugins/network-bridge",
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			panic(fmt.Sprintf("building %s: %v\n%s", name, err, out))
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireRealParts fails (never skips) when a part the test needs is absent.
func requireRealParts(t *testing.T) {
	t.Helper()
	_, err := exec.LookPath("qemu-system-x86_64")
	require.NoError(t, err, "QEMU is missing: run `make deps` (apt-get install qemu-system-x86)")
	for _, f := range []string{"vmlinux", "initramfs.cpio.gz"} {
		_, err := os.Stat(filepath.Join(guest, f))
		require.NoError(t, err, "the guest image is missing: run `make guest`")
	}
}

type hostProc struct {
	cmd    *exec.Cmd
	log    *os.File
	client *api.Client
}

// startHost runs `vertigo run` on the config and waits for its API, whose
// port the host picks and records in its state directory.
func startHost(t *testing.T, dir, cfg string) *hostProc {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(dir, "host.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	require.NoError(t, err)
	cmd := exec.Command(filepath.Join(bin, "vertigo"), "run", "-config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	h := &hostProc{cmd: cmd, log: logf}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("host log:\n%s", tail(string(b), 120))
		}
	})
	token, addr := "", ""
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "state", "api-token"))
		if err != nil {
			return false
		}
		token = strings.TrimSpace(string(b))
		if addr, err = api.ReadAddress(api.AddressPath(filepath.Join(dir, "state"))); err != nil {
			return false
		}
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 90*time.Second, 50*time.Millisecond, "the host's API never answered")
	h.client = &api.Client{Addr: addr, Token: token}
	return h
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

func vmOf(st api.Status, name string) model.VM {
	for _, vm := range st.VMs {
		if vm.Name == name {
			return vm
		}
	}
	return model.VM{}
}

// waitFor polls the API until cond holds for the status.
func waitFor(t *testing.T, c *api.Client, within time.Duration, what string, cond func(api.Status) bool) api.Status {
	t.Helper()
	var st api.Status
	ok := assert.Eventually(t, func() bool {
		s, err := c.Status(context.Background())
		if err != nil {
			return false
		}
		st = s
		return cond(s)
	}, within, 100*time.Millisecond, "waiting for: %s", what)
	if !ok {
		for _, vm := range st.VMs {
			t.Logf("last seen: %s on %s, %s, %s, usage %+v, last decision %+v", vm.Name, vm.Node, vm.Phase, vm.Size, st.Usage[vm.Name], vm.LastDecision)
		}
		t.FailNow()
	}
	return st
}

// fleet is the config of a test's fleet: the built plugins, the overlay
// between the nodes, and fleet (HCL node and vm blocks).
func fleet(t *testing.T, dir, prefix, vms string) string {
	t.Helper()
	cfg := filepath.Join(dir, "config.hcl")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(fleetConfig,
		filepath.Join(bin, "vertigo-scaler"), filepath.Join(bin, "vertigo-placement"), filepath.Join(bin, "vertigo-qemu"),
		filepath.Join(guest, "vmlinux"), filepath.Join(guest, "initramfs.cpio.gz"), filepath.Dir(guest),
		filepath.Join(bin, "vertigo-bridge"), prefix)+vms), 0o600))
	return cfg
}

const fleetConfig = `state_dir = "state"
api {
  address = "127.0.0.1:0"
}
loop {
  interval        = "1s"
  metrics_window  = "20s"
  health_interval = "500ms"
}
plugin "vertigo-scaler" {
  kind = "scaler"
  path = %q
  config {
    downscale_stabilization          = "4s"
    downscale_cooldown_after_upscale = "4s"
    # Room for the database beyond its working set: pgbench's small
    # database needs more memory than the VM's minimum only with it.
    db_memory_headroom = "512MiB"
  }
}
plugin "vertigo-placement" {
  kind = "placement"
  path = %q
}
plugin "vertigo-qemu" {
  kind = "hypervisor"
  path = %q
  config {
    run_dir    = "qemu"
    kernel     = %q
    initrd     = %q
    images_dir = %q
  }
}
plugin "vertigo-bridge" {
  kind = "network"
  path = %q
  config {
    state_dir        = "net"
    netns_prefix     = %q
    client_namespace = "client"
    subnet           = "10.78.0.0/24"
    underlay_subnet  = "10.253.0.0/24"
    vni              = 78
  }
}
`

// nodes are the fleet's two nodes with vcpus each.
func nodes(vcpus int) string {
	return fmt.Sprintf(`
node "node-a" {
  vcpus     = %[1]d
  memory    = "4GiB"
  watermark = 1
}
node "node-b" {
  vcpus     = %[1]d
  memory    = "4GiB"
  watermark = 1
}
`, vcpus)
}

const echoVM = `
vm "pg-1" {
  node        = "node-a"
  min_vcpus   = 1
  max_vcpus   = 3
  unit_vcpus  = 1
  min_memory  = "512MiB"
  max_memory  = "1GiB"
  unit_memory = "128MiB"
}
`

// testPrefix names what a test's network plugin makes in the kernel, so
// that the test can remove it.
func testPrefix(t *testing.T) string {
	prefix := fmt.Sprintf("vte%d-", os.Getpid()%10000)
	t.Cleanup(func() { deleteNamespaces(t, prefix) })
	return prefix
}

// echoPort is the guest agent's TCP echo service.
const echoPort = "7"

// The product's promise on one machine: a VM grows under load and shrinks
// after, moves to another node and back while it keeps running, and
// survives a SIGKILL of the host, which finds it again. All the while a
// client in its own namespace holds one TCP connection to it across the
// overlay, and not a byte is lost, repeated or reset.
func TestFleetScalesMigratesAndSurvivesHostKill(t *testing.T) {
	requireRealParts(t)
	prefix := testPrefix(t)
	client := prefix + "client"
	dir := t.TempDir()
	t.Cleanup(func() { killQEMUs(t, filepath.Join(dir, "qemu")) })
	cfg := fleet(t, dir, prefix, nodes(4)+echoVM)

	h := startHost(t, dir, cfg)
	ctx := context.Background()
	st := waitFor(t, h.client, 90*time.Second, "pg-1 running and reporting", func(s api.Status) bool {
		_, ok := s.Usage["pg-1"]
		return vmOf(s, "pg-1").Phase == model.PhaseRunning && ok
	})
	require.Equal(t, int64(1000), vmOf(st, "pg-1").Size.VCPUMilli)
	addr := vmOf(st, "pg-1").Address
	require.NotEmpty(t, addr, "the VM has an address from the network plugin")
	ip, _, err := net.ParseCIDR(addr)
	require.NoError(t, err)

	var conn net.Conn
	require.Eventually(t, func() bool {
		conn, err = echoprobe.Dial(ctx, client, "tcp", net.JoinHostPort(ip.String(), echoPort))
		return err == nil
	}, 30*time.Second, 100*time.Millisecond, "the guest's echo service never answered from %s: %v", client, err)
	stream := echoprobe.NewStream(conn, 128, 50*time.Millisecond)
	t.Cleanup(func() {
		// Whether the guest still echoed tells a stuck guest from a stuck
		// channel to its agent.
		if r := stream.Snapshot(); t.Failed() {
			t.Logf("the echo stream when the test failed: sent %d, received %d, error %v, longest stall %s", r.Sent, r.Received, r.Err, r.LongestStall)
		}
	})
	streamOK := func(when string) {
		t.Helper()
		r := stream.Snapshot()
		require.NoError(t, r.Err, "the client's TCP stream broke %s", when)
		t.Logf("stream %s: %d bytes echoed, longest stall in this phase %s", when, r.Received, stream.TakeStall())
	}

	// Grows under load...
	require.NoError(t, h.client.LoadVM(ctx, "pg-1", api.LoadRequest{CPUWorkers: 3, DurationNs: int64(15 * time.Second)}))
	st = waitFor(t, h.client, 60*time.Second, "pg-1 grown, its vCPUs online in the guest", func(s api.Status) bool {
		return vmOf(s, "pg-1").Size.VCPUMilli > 1000 && s.Usage["pg-1"].OnlineVCPUMilli > 1000
	})
	t.Logf("grown: %s (%s)", vmOf(st, "pg-1").Size, vmOf(st, "pg-1").LastDecision.Reason)
	streamOK("after growing")

	// ...and shrinks after. The echo stream is load too (under TCG every
	// packet costs the guest), so the VM may settle above its minimum.
	peak := vmOf(st, "pg-1").Size.VCPUMilli
	st = waitFor(t, h.client, 120*time.Second, "pg-1 shrunk after the load", func(s api.Status) bool {
		got := vmOf(s, "pg-1").Size.VCPUMilli
		peak = max(peak, got)
		return got < peak && s.Usage["pg-1"].OnlineVCPUMilli == got
	})
	t.Logf("shrunk: %s (%s)", vmOf(st, "pg-1").Size, vmOf(st, "pg-1").LastDecision.Reason)
	streamOK("after shrinking")

	// Moves while it runs: its uptime goes on.
	before := st.Usage["pg-1"].UptimeNanos
	var last api.Migration
	require.NoError(t, h.client.MigrateVM(ctx, "pg-1", "node-b", func(m api.Migration) { last = m }))
	require.Equal(t, "completed", last.State)
	st = waitFor(t, h.client, 30*time.Second, "pg-1 reporting from node-b", func(s api.Status) bool {
		return vmOf(s, "pg-1").Node == "node-b" && s.Usage["pg-1"].UptimeNanos > before
	})
	t.Logf("migrated: downtime %s, uptime %s -> %s", time.Duration(last.DowntimeNanos), time.Duration(before), time.Duration(st.Usage["pg-1"].UptimeNanos))
	require.Equal(t, addr, vmOf(st, "pg-1").Address, "the VM keeps its address on the other node")
	streamOK("after migrating to node-b")
	require.NoError(t, h.client.MigrateVM(ctx, "pg-1", "node-a", func(m api.Migration) { last = m }))
	require.Equal(t, "completed", last.State)
	st = waitFor(t, h.client, 30*time.Second, "pg-1 back on node-a", func(s api.Status) bool { return vmOf(s, "pg-1").Node == "node-a" })
	streamOK("after migrating back to node-a")
	require.NoError(t, h.client.MigrateVM(ctx, "pg-1", "node-b", func(m api.Migration) { last = m }))
	st = waitFor(t, h.client, 30*time.Second, "pg-1 on node-b again", func(s api.Status) bool { return vmOf(s, "pg-1").Node == "node-b" })
	streamOK("after migrating to node-b again")

	// SIGKILL of the host: its plugins follow it, the VM does not.
	handle := vmOf(st, "pg-1").Handle
	var pluginPIDs []int
	for _, p := range st.Plugins {
		pluginPIDs = append(pluginPIDs, p.PID)
	}
	require.NoError(t, h.cmd.Process.Kill())
	_ = h.cmd.Wait()
	require.Eventually(t, func() bool {
		for _, pid := range pluginPIDs {
			if alive(pid) {
				return false
			}
		}
		return true
	}, 10*time.Second, 50*time.Millisecond, "plugins outlived their host")

	h2 := startHost(t, dir, cfg)
	st2 := waitFor(t, h2.client, 60*time.Second, "pg-1 recovered and reporting", func(s api.Status) bool {
		return vmOf(s, "pg-1").Phase == model.PhaseRunning && s.Usage["pg-1"].UptimeNanos > st.Usage["pg-1"].UptimeNanos
	})
	vm := vmOf(st2, "pg-1")
	require.Equal(t, "node-b", vm.Node)
	require.Equal(t, string(handle), string(vm.Handle), "the same QEMU process, not a new one")
	require.Equal(t, addr, vm.Address)

	received := stream.Snapshot().Received
	require.Eventually(t, func() bool { return stream.Snapshot().Received > received+10_000 }, 30*time.Second, 50*time.Millisecond,
		"the stream goes on after the host's death")
	r := stream.Stop(30 * time.Second)
	require.NoError(t, r.Err, "the client's TCP connection lived through it all")
	t.Logf("TCP stream through resizes, 3 migrations and a host SIGKILL: %d bytes, none lost or repeated, longest stall %s", r.Received, r.LongestStall)
}

// deleteNamespaces removes the network namespaces the test's network plugin
// made: like VMs, they outlive the host by design.
func deleteNamespaces(t *testing.T, prefix string) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Logf("listing namespaces: %v", err)
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			if out, err := exec.Command("ip", "netns", "del", f[0]).CombinedOutput(); err != nil {
				t.Logf("deleting namespace %s: %v: %s", f[0], err, out)
			}
		}
	}
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie has exited; only its parent has not reaped it yet.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// killQEMUs ends every QEMU the test's hypervisor started: VMs outlive
// hosts by design, so a test must end them itself. A failed test first
// shows each guest's console, which the temporary directory takes with it:
// the agent logs there what it saw of its host.
func killQEMUs(t *testing.T, runDir string) {
	for _, pid := range qemusOf(runDir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if !t.Failed() {
		return
	}
	logs, _ := filepath.Glob(filepath.Join(runDir, "*", "serial.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		t.Logf("%s:\n%s", l, tail(string(b), 40))
	}
}

// qemusOf are the pids of the QEMUs whose command line names runDir.
func qemusOf(runDir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), runDir) && strings.Contains(string(cmdline), "qemu") {
			var pid int
			if _, err := fmt.Sscan(e.Name(), &pid); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}
