// Package daemon wires the host together: plugins, store, control loop,
// local API and metrics, started in an order that never leaves the host
// half-configured, and stopped without touching the VMs.
package daemon

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vertigo-autoscaler/vertigo/host/api"
	"github.com/vertigo-autoscaler/vertigo/host/config"
	"github.com/vertigo-autoscaler/vertigo/host/control"
	"github.com/vertigo-autoscaler/vertigo/host/guests"
	"github.com/vertigo-autoscaler/vertigo/host/history"
	"github.com/vertigo-autoscaler/vertigo/host/metrics"
	"github.com/vertigo-autoscaler/vertigo/host/store"
	"github.com/vertigo-autoscaler/vertigo/host/supervisor"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// Host is a running vertigo host.
type Host struct {
	cfg       *config.Config
	log       hclog.Logger
	plugins   *Plugins
	store     store.Store
	placement placementClient
	ctrl      *control.Controller
	metrics   *metrics.Metrics
	api       *api.Server
	clock     control.Clock
	// hv and guests are nil when no hypervisor plugin is configured, net
	// when no network plugin is: VMs then run without a NIC.
	hv      *hypervisorClient
	net     *networkClient
	guests  *guests.Buffer
	trigger chan string // VMs whose guests raised pressure
	history *history.History
}

// ConfigError carries the diagnostics that kept the host from starting.
type ConfigError struct{ Text string }

func (e *ConfigError) Error() string { return e.Text }

// Start brings a host up: plugins started and configured, state loaded,
// placement replayed and reconciled with the config, API listening. Any
// failure stops what was started and returns the error.
func Start(ctx context.Context, cfg *config.Config, log hclog.Logger) (*Host, error) {
	m := metrics.New()
	plugins, diags := StartPlugins(ctx, cfg, log, m.PluginRestart)
	if diags.HasErrors() {
		return nil, &ConfigError{Text: config.Format(diags)}
	}
	h := &Host{cfg: cfg, log: log, plugins: plugins, metrics: m, clock: control.RealClock{}, trigger: make(chan string, 64), history: history.New(history.Limits{})}
	if err := h.start(ctx); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

func (h *Host) start(ctx context.Context) error {
	st, err := store.OpenFile(h.cfg.StateDir)
	if err != nil {
		return fmt.Errorf("opening state: %w", err)
	}
	h.store = st

	timeout := h.cfg.Loop.CallTimeout
	pp := h.plugins.ByKind[pb.Kind_KIND_PLACEMENT]
	h.placement = placementClient{supervised(pp, timeout, h.metrics.ObservePluginCall)}
	pp.OnStart(func(ctx context.Context, c *sdk.Client) error {
		return control.ReplayPlacement(ctx, placementClient{direct(pp.Name(), c, timeout)}, h.store)
	})
	cc := control.Config{
		Store:          h.store,
		Scaler:         scalerClient{supervised(h.plugins.ByKind[pb.Kind_KIND_SCALER], timeout, h.metrics.ObservePluginCall)},
		Placement:      h.placement,
		Clock:          h.clock,
		Recorder:       h.metrics,
		Log:            h.log,
		ConsentTimeout: h.cfg.Loop.ConsentTimeout,
	}
	if np := h.plugins.ByKind[pb.Kind_KIND_NETWORK]; np != nil {
		if err := h.startNetwork(ctx, np); err != nil {
			return err
		}
	}
	var stop stopFunc
	if hp := h.plugins.ByKind[pb.Kind_KIND_HYPERVISOR]; hp != nil {
		c := supervised(hp, timeout, h.metrics.ObservePluginCall)
		h.hv = &hypervisorClient{c}
		h.guests = guests.New(h.cfg.Loop.MetricsWindow, h.log.Named("guests"), h.pressure)
		cc.Hypervisor, cc.Guests = h.hv, h.guests
		cc.Migrator = hypervisorMigrator{caller: c, bandwidth: h.cfg.Loop.MigrationBandwidth, downtime: h.cfg.Loop.MigrationDowntime, net: h.net, log: h.log.Named("migrate")}
		stop = h.stopVM
	}
	if err := Reconcile(ctx, h.cfg, h.store, h.placement, stop, h.log); err != nil {
		return fmt.Errorf("reconciling the fleet with %s: %w", h.cfg.File, err)
	}
	h.ctrl = control.New(cc)

	// The API listens before any VM is started: a port already taken must
	// stop the host before it has changed anything.
	if err := h.startAPI(); err != nil {
		return err
	}
	if h.hv != nil {
		return h.adoptVMs(ctx)
	}
	return nil
}

func (h *Host) startAPI() error {
	token, err := api.EnsureToken(h.cfg.API.TokenFile)
	if err != nil {
		return err
	}
	h.api, err = api.New(h.cfg.API.Address, token, h, h.metrics.Handler(), h.log.Named("api"))
	if err != nil {
		return err
	}
	if err := h.api.Start(); err != nil {
		return err
	}
	return api.WriteAddress(api.AddressPath(h.cfg.StateDir), h.api.Addr())
}

// Run supervises the plugins and runs the control loop until ctx ends.
func (h *Host) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, p := range h.plugins.ByKind {
		wg.Add(1)
		go func() { defer wg.Done(); p.Run(ctx) }()
	}
	if h.hv == nil {
		h.log.Warn("no hypervisor plugin configured: VMs are declared and accounted, not started or resized")
	} else {
		wg.Add(1)
		go func() { defer wg.Done(); h.guests.Follow(ctx, h.hv.reports) }()
	}
	h.log.Info("vertigo host running", "api", h.api.Addr(), "state_dir", h.cfg.StateDir, "interval", h.cfg.Loop.Interval)
	t := time.NewTicker(h.cfg.Loop.Interval)
	defer t.Stop()
	pass := func() {
		if err := h.Tick(ctx); err != nil && ctx.Err() == nil {
			h.log.Error("control loop pass failed; VMs left as they are", "error", err)
		}
	}
	pass()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
			pass()
		case vm := <-h.trigger:
			// A guest under pressure skips the wait for the next tick, and
			// only its VM is decided.
			if err := h.ctrl.DecideNow(ctx, vm); err != nil && ctx.Err() == nil {
				h.log.Error("pressure-triggered decision failed", "vm", vm, "error", err)
			}
			h.recordNow(ctx)
		}
	}
}

// pressure queues a VM for an immediate decision; a full queue means
// decisions are due anyway.
func (h *Host) pressure(vm string) {
	select {
	case h.trigger <- vm:
	default:
	}
}

// Tick runs one control-loop pass and refreshes the fleet gauges.
func (h *Host) Tick(ctx context.Context) error {
	start := time.Now()
	if h.hv != nil {
		if err := h.startPlaced(ctx); err != nil {
			return err
		}
	}
	err := h.ctrl.Tick(ctx)
	h.metrics.ObserveTick(time.Since(start))
	if st, serr := h.Status(ctx); serr == nil {
		usage := make([]metrics.NodeUsage, len(st.Nodes))
		for i, n := range st.Nodes {
			usage[i] = metrics.NodeUsage{Name: n.Name, Capacity: n.Capacity, Reserved: n.Reserved}
		}
		h.metrics.SetFleet(st.VMs, usage)
		h.recordHistory(st)
	}
	return err
}

// Close stops the API and the plugins and releases the state directory.
// VMs are left running: they belong to the hypervisor, not to this process.
func (h *Host) Close() {
	if h.api != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = h.api.Shutdown(ctx)
		cancel()
		_ = os.Remove(api.AddressPath(h.cfg.StateDir))
	}
	if h.plugins != nil {
		h.plugins.Stop()
	}
	if h.store != nil {
		_ = h.store.Close()
	}
}

// Status implements api.Backend.
func (h *Host) Status(ctx context.Context) (api.Status, error) {
	nodes, err := h.store.ListNodes(ctx)
	if err != nil {
		return api.Status{}, err
	}
	vms, err := h.store.ListVMs(ctx)
	if err != nil {
		return api.Status{}, err
	}
	st := api.Status{Time: h.clock.Now(), VMs: vms}
	idx := map[string]int{}
	for _, n := range nodes {
		idx[n.Name] = len(st.Nodes)
		st.Nodes = append(st.Nodes, api.NodeStatus{Name: n.Name, Capacity: n.Capacity, Watermark: n.Watermark})
	}
	for _, vm := range vms {
		if i, ok := idx[vm.Node]; ok {
			ns := &st.Nodes[i]
			ns.Reserved.VCPUMilli += vm.Reserved.VCPUMilli
			ns.Reserved.MemoryBytes += vm.Reserved.MemoryBytes
			ns.VMs = append(ns.VMs, vm.Name)
		}
	}
	for _, p := range h.plugins.ByKind {
		// From supervision's own records: a status every second must not
		// add calls to every plugin.
		ps := api.PluginStatus{Name: p.Name(), PID: p.Pid(), Restarts: p.Restarts(), Healthy: p.Healthy(), Capabilities: p.Capabilities()}
		if info := p.Info(); info != nil {
			ps.Kind, ps.Version = sdk.KindName(info.GetKind()), info.GetPluginVersion()
		}
		st.Plugins = append(st.Plugins, ps)
	}
	sort.Slice(st.Plugins, func(i, j int) bool { return st.Plugins[i].Name < st.Plugins[j].Name })
	if h.ctrl != nil {
		seen := map[string]bool{}
		for _, m := range h.ctrl.Migrations() {
			am := api.Migration{VM: m.VM, From: m.From, To: m.To, Reason: m.Reason, State: m.State, Error: m.Error}
			fillProgress(&am, m.Progress)
			st.Migrations = append(st.Migrations, am)
			seen[m.VM] = true
		}
		state := "planned"
		if h.hv == nil {
			state = "planned (no hypervisor plugin to execute it)"
		}
		for _, m := range h.ctrl.Plans() {
			if !seen[m.GetVm()] {
				st.Migrations = append(st.Migrations, api.Migration{VM: m.GetVm(), From: m.GetFrom(), To: m.GetTo(), Reason: m.GetReason(), State: state})
			}
		}
	}
	if h.guests != nil {
		st.Usage = map[string]api.Usage{}
		for _, vm := range vms {
			if s, ok := h.guests.Latest(vm.Name); ok {
				st.Usage[vm.Name] = api.Usage{Load1: s.Load1, OnlineVCPUMilli: s.OnlineVCPUMilli, MemoryUsed: s.MemoryUsed, OnlineMemory: s.OnlineMemory, UptimeNanos: s.UptimeNanos}
			}
		}
	}
	return st, nil
}

// RestartPlugin implements api.Backend.
func (h *Host) RestartPlugin(_ context.Context, name string) error {
	for _, p := range h.plugins.ByKind {
		if p.Name() == name {
			p.Restart()
			return nil
		}
	}
	return fmt.Errorf("plugin %q: %w", name, api.ErrNotFound)
}

// Placement snapshot, for tests and `vertigo status --placement`.
func (h *Host) PlacementSnapshot(ctx context.Context) (*pb.SnapshotResponse, error) {
	return h.placement.Snapshot(ctx)
}

// Store is the host's store (tests read it to check invariants).
func (h *Host) Store() store.Store { return h.store }

// Plugin returns the supervised plugin of a kind.
func (h *Host) Plugin(kind pb.Kind) *supervisor.Plugin { return h.plugins.ByKind[kind] }
