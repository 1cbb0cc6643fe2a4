package daemon

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/config"
	"github.com/vertigo-autoscaler/vertigo/host/control"
	"github.com/vertigo-autoscaler/vertigo/host/model"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// These tests run the host with the real plugin binaries, built once here,
// as `vertigo run` does.

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vertigo-daemon-test")
	if err != nil {
		panic(err)
	}
	binDir = dir
	for name, pkg := range map[string]string{
		"vertigo-scaler":     "../../plugins/scaler",
		"vertigo-placement":  "../../plugins/placement",
		"vertigo-testplugin": "../internal/testplugin",
	} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput()
		if err != nil {
			panic(fmt.Sprintf("building %s: %v\n%s", name, err, out))
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type fixture struct {
	scaler string // plugin block of the scaler
	nodes  string
	vms    string
}

func defaultFixture() fixture {
	return fixture{
		scaler: fmt.Sprintf(`plugin "vertigo-scaler" {
  kind = "scaler"
  path = %q
  config {
    mode = "default"
  }
}`, filepath.Join(binDir, "vertigo-scaler")),
		nodes: `
node "node-a" {
  vcpus  = 4
  memory = "8GiB"
}
node "node-b" {
  vcpus  = 4
  memory = "8GiB"
}`,
		vms: `
vm "pg-1" {
  min_vcpus = 0.5
  max_vcpus = 4
  unit_vcpus = 0.25
  min_memory = "512MiB"
  max_memory = "4GiB"
  unit_memory = "256MiB"
}
vm "pg-2" {
  node = "node-b"
  min_vcpus = 1
  max_vcpus = 4
  unit_vcpus = 0.25
  min_memory = "1GiB"
  max_memory = "4GiB"
  unit_memory = "256MiB"
}`,
	}
}

// writeConfig writes a config into dir; its state lives in dir/state.
func writeConfig(t *testing.T, dir string, f fixture) string {
	t.Helper()
	src := fmt.Sprintf(`state_dir = "state"
api {
  address = "127.0.0.1:0"
}
loop {
  interval        = "1h"
  health_interval = "100ms"
  call_timeout    = "2s"
  restart_backoff_min = "10ms"
  restart_backoff_max = "200ms"
}
%s
plugin "vertigo-placement" {
  kind = "placement"
  path = %q
}
%s
%s
`, f.scaler, filepath.Join(binDir, "vertigo-placement"), f.nodes, f.vms)
	path := filepath.Join(dir, "config.hcl")
	require.NoError(t, os.WriteFile(path, []byte(src), 0o600))
	return path
}

func load(t *testing.T, path string) *config.Config {
	t.Helper()
	cfg, diags := config.Load(path)
	require.False(t, diags.HasErrors(), config.Format(diags))
	return cfg
}

func logger(t *testing.T) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: testWriter{t}, Level: hclog.Debug})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func start(t *testing.T, cfg *config.Config) *Host {
	t.Helper()
	h, err := Start(context.Background(), cfg, logger(t))
	require.NoError(t, err)
	return h
}

func run(t *testing.T, h *Host) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; h.Close() })
}

func snapshot(t *testing.T, h *Host) *pb.SnapshotResponse {
	t.Helper()
	s, err := h.PlacementSnapshot(context.Background())
	require.NoError(t, err)
	return s
}

// checkAccounts holds the host's two invariants against the store and the
// placement plugin: no node over capacity, every VM on one node, and
// placement agreeing with the store about every reservation.
func checkAccounts(t *testing.T, h *Host) {
	t.Helper()
	ctx := context.Background()
	nodes, err := h.Store().ListNodes(ctx)
	require.NoError(t, err)
	vms, err := h.Store().ListVMs(ctx)
	require.NoError(t, err)
	used := map[string]model.Size{}
	for _, vm := range vms {
		u := used[vm.Node]
		u.VCPUMilli += vm.Reserved.VCPUMilli
		u.MemoryBytes += vm.Reserved.MemoryBytes
		used[vm.Node] = u
		require.True(t, vm.Size.Fits(vm.Reserved), "%s: size %s beyond its reservation %s", vm.Name, vm.Size, vm.Reserved)
	}
	for _, n := range nodes {
		require.True(t, used[n.Name].Fits(n.Capacity), "node %s: %s reserved of %s", n.Name, used[n.Name], n.Capacity)
	}
	snap := snapshot(t, h)
	require.Len(t, snap.GetVms(), len(vms))
	for i, p := range snap.GetVms() {
		require.Equal(t, vms[i].Name, p.GetVm())
		require.Equal(t, vms[i].Node, p.GetNode(), p.GetVm())
		require.Equal(t, vms[i].Reserved, model.SizeFrom(p.GetReserved()), p.GetVm())
	}
}

func TestStartPlacesTheFleet(t *testing.T) {
	h := start(t, load(t, writeConfig(t, t.TempDir(), defaultFixture())))
	defer h.Close()
	vms, err := h.Store().ListVMs(context.Background())
	require.NoError(t, err)
	require.Len(t, vms, 2)
	require.Equal(t, "node-b", vms[1].Node, "a pinned VM stays where it is pinned")
	require.NotEmpty(t, vms[0].Node)
	checkAccounts(t, h)

	st, err := h.Status(context.Background())
	require.NoError(t, err)
	require.Len(t, st.Plugins, 2)
	for _, p := range st.Plugins {
		require.True(t, p.Healthy, p.Name)
		require.NotZero(t, p.PID, p.Name)
	}
	require.Contains(t, st.Plugins[0].Capabilities, "placement.migration_plans", "sorted by name: placement first")
}

// SIGKILL of the placement plugin while the host runs: the supervisor
// restarts it and replays the fleet before anyone calls it again.
func TestPlacementSIGKILLLosesNothing(t *testing.T) {
	h := start(t, load(t, writeConfig(t, t.TempDir(), defaultFixture())))
	run(t, h)
	before := snapshot(t, h)
	p := h.Plugin(pb.Kind_KIND_PLACEMENT)
	pid := p.Pid()
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	require.Eventually(t, func() bool { return p.Restarts() >= 1 && p.Pid() != 0 }, 20*time.Second, 10*time.Millisecond)
	require.NotEqual(t, pid, p.Pid())
	after := snapshot(t, h)
	require.Equal(t, before.String(), after.String())
	checkAccounts(t, h)
}

// A host restart reads the fleet back from its state directory.
func TestHostRestartKeepsTheFleet(t *testing.T) {
	dir := t.TempDir()
	cfg := load(t, writeConfig(t, dir, defaultFixture()))
	h := start(t, cfg)
	vmsBefore, err := h.Store().ListVMs(context.Background())
	require.NoError(t, err)
	snapBefore := snapshot(t, h)
	h.Close()

	h = start(t, cfg)
	defer h.Close()
	vmsAfter, err := h.Store().ListVMs(context.Background())
	require.NoError(t, err)
	require.Equal(t, vmsBefore, vmsAfter)
	require.Equal(t, snapBefore.String(), snapshot(t, h).String())

	info, err := os.Stat(filepath.Join(dir, "state", "vms", "pg-1.json"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
}

// A typo in a plugin's config block is reported at its line, and no plugin
// process is left behind.
func TestPluginConfigTypoIsRefusedWithItsLocation(t *testing.T) {
	f := defaultFixture()
	f.scaler = strings.Replace(f.scaler, `mode = "default"`, `mdoe = "default"`, 1)
	path := writeConfig(t, t.TempDir(), f)
	_, err := Start(context.Background(), load(t, path), logger(t))
	require.Error(t, err)
	require.Regexp(t, `config\.hcl:\d+,\d+-\d+: Unsupported argument; An argument named "mdoe" is not expected here\. Did you mean "mode"\?`, err.Error())
	require.Zero(t, processesRunning(t, binDir), "a refused config leaves no plugin running")
}

func TestPluginRejectingAValueIsRefusedWithItsLocation(t *testing.T) {
	f := defaultFixture()
	f.scaler = strings.Replace(f.scaler, `mode = "default"`, `mode = "default"
    cpu_target_load = 7`, 1)
	path := writeConfig(t, t.TempDir(), f)
	_, err := Start(context.Background(), load(t, path), logger(t))
	require.Error(t, err)
	require.Regexp(t, `config\.hcl:\d+,\d+-\d+: Plugin vertigo-scaler rejects cpu_target_load`, err.Error())
}

// processesRunning counts live processes whose executable is in dir.
func processesRunning(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	n := 0
	for _, e := range entries {
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && strings.HasPrefix(exe, dir+"/") {
			n++
		}
	}
	return n
}

// --- The control loop with the real plugins -------------------------------

// guestSim is the world the loop sees: a guest whose load the test sets, on
// a hypervisor that resizes at once. It stands in for the QEMU plugin,
// which comes in a later issue; only the host and plugins here are real.
type guestSim struct {
	mu    sync.Mutex
	clock *fakeClock
	load  map[string]float64
	used  map[string]uint64
	sizes map[string]model.Size
}

func (g *guestSim) Window(vm string) (*pb.MetricsWindow, []*pb.GuestEvent, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	w := &pb.MetricsWindow{}
	for i := 11; i >= 0; i-- {
		w.TUnixNano = append(w.TUnixNano, g.clock.Now().Add(-time.Duration(i)*5*time.Second).UnixNano())
		w.Load1 = append(w.Load1, g.load[vm])
		w.Load5 = append(w.Load5, g.load[vm])
		w.CpuPressureAvg10 = append(w.CpuPressureAvg10, 0)
		w.MemoryPressureAvg10 = append(w.MemoryPressureAvg10, 0)
		w.MemoryUsedBytes = append(w.MemoryUsedBytes, g.used[vm])
		w.MemoryCachedBytes = append(w.MemoryCachedBytes, 0)
		w.OnlineVcpuMilli = append(w.OnlineVcpuMilli, g.sizes[vm].VCPUMilli)
		w.OnlineMemoryBytes = append(w.OnlineMemoryBytes, g.sizes[vm].MemoryBytes)
	}
	return w, nil, true
}

func (g *guestSim) Resize(_ context.Context, vm string, target model.Size, _ bool, _ time.Duration) (control.Resized, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sizes[vm] = target
	return control.Resized{Actual: target}, nil
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// loopWith builds a controller over the host's real plugins and a guestSim,
// with every VM marked running at its stored size.
func loopWith(t *testing.T, h *Host) (*control.Controller, *guestSim) {
	t.Helper()
	ctx := context.Background()
	clock := &fakeClock{t: time.Unix(1_750_000_000, 0)}
	g := &guestSim{clock: clock, load: map[string]float64{}, used: map[string]uint64{}, sizes: map[string]model.Size{}}
	vms, err := h.Store().ListVMs(ctx)
	require.NoError(t, err)
	for _, vm := range vms {
		vm.Phase = model.PhaseRunning
		_, err := h.Store().PutVM(ctx, vm)
		require.NoError(t, err)
		g.sizes[vm.Name] = vm.Size
		g.used[vm.Name] = 200 << 20
	}
	timeout := h.cfg.Loop.CallTimeout
	c := control.New(control.Config{
		Store:      h.Store(),
		Scaler:     scalerClient{supervised(h.Plugin(pb.Kind_KIND_SCALER), timeout, nil)},
		Placement:  h.placement,
		Hypervisor: g,
		Guests:     g,
		Clock:      clock,
		Log:        logger(t),
	})
	return c, g
}

// A VM under load grows (within what its node has), and shrinks back once
// the load is gone and has stayed gone, with the invariants checked after
// every pass.
func TestLoopGrowsAndShrinksWithRealPlugins(t *testing.T) {
	h := start(t, load(t, writeConfig(t, t.TempDir(), defaultFixture())))
	defer h.Close()
	c, g := loopWith(t, h)
	ctx := context.Background()

	g.setLoad("pg-2", 3.5)
	require.NoError(t, c.Tick(ctx))
	checkAccounts(t, h)
	grown := vm(t, h, "pg-2")
	require.Greater(t, grown.Size.VCPUMilli, int64(1000), grown.LastDecision.Reason)
	require.Equal(t, control.OutcomeGrown, grown.LastDecision.Outcome)

	g.setLoad("pg-2", 0)
	for i := 0; i < 120 && vm(t, h, "pg-2").Size.VCPUMilli > 1000; i++ {
		g.clock.Add(15 * time.Second)
		require.NoError(t, c.Tick(ctx))
		checkAccounts(t, h)
	}
	require.Equal(t, int64(1000), vm(t, h, "pg-2").Size.VCPUMilli, "back to the minimum within 30 simulated minutes")
}

// Misbehaving scalers through a real plugin process: the host clamps or
// refuses, logs, and keeps every VM.
func TestLoopSurvivesMisbehavingScalers(t *testing.T) {
	for _, mode := range []string{"out-of-bounds", "malformed"} {
		t.Run(mode, func(t *testing.T) {
			f := defaultFixture()
			f.scaler = fmt.Sprintf(`plugin "vertigo-testplugin" {
  kind = "scaler"
  path = %q
  args = ["-mode", %q]
}`, filepath.Join(binDir, "vertigo-testplugin"), mode)
			// Both VMs on one node, so that placement, not the bounds,
			// is what stops the second one.
			f.vms = strings.Replace(f.vms, `vm "pg-1" {`, `vm "pg-1" {
  node = "node-b"`, 1)
			h := start(t, load(t, writeConfig(t, t.TempDir(), f)))
			defer h.Close()
			c, g := loopWith(t, h)
			before, err := h.Store().ListVMs(context.Background())
			require.NoError(t, err)
			for i := 0; i < 3; i++ {
				require.NoError(t, c.Tick(context.Background()))
				g.clock.Add(5 * time.Second)
				checkAccounts(t, h)
			}
			after, err := h.Store().ListVMs(context.Background())
			require.NoError(t, err)
			require.Len(t, after, len(before))
			for i, vm := range after {
				require.True(t, vm.Size.Fits(vm.Bounds.Max) && vm.Bounds.Min.Fits(vm.Size), "%s at %s outside its bounds", vm.Name, vm.Size)
				if mode == "malformed" {
					require.Equal(t, before[i].Size, vm.Size, "a malformed reply changes nothing")
				}
			}
		})
	}
}

func vm(t *testing.T, h *Host, name string) model.VM {
	t.Helper()
	v, err := h.Store().GetVM(context.Background(), name)
	require.NoError(t, err)
	return v
}

func (g *guestSim) setLoad(vm string, l float64) { g.mu.Lock(); g.load[vm] = l; g.mu.Unlock() }
