package conformance

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

var fakeConfigJSON = []byte(`{"kernel":"/boot/vmlinux"}`)

// fakeFleet launches fake plugin processes of one variant over one
// machine, as the CLI launches a plugin binary again and again.
type fakeFleet struct {
	t       *testing.T
	m       *fakeMachine
	caps    []string
	variant func(*fakeHypervisor) sdk.Base
	procs   []*fakeHypervisor
	current *sdk.Client
}

func newFakeFleet(t *testing.T, caps []string, variant func(*fakeHypervisor) sdk.Base) *fakeFleet {
	return &fakeFleet{t: t, m: newFakeMachine(), caps: caps, variant: variant}
}

func correct(f *fakeHypervisor) sdk.Base { return f }

func (f *fakeFleet) launch() *sdk.Client {
	p := &fakeHypervisor{m: f.m, caps: f.caps}
	f.procs = append(f.procs, p)
	f.current = connect(f.t, f.variant(p))
	return f.current
}

// options configure the fake and let the suite kill and relaunch it; a
// killed process's connection is closed, its VMs stay on the machine.
func (f *fakeFleet) options() Options {
	return Options{
		ConfigJSON: fakeConfigJSON,
		Relaunch:   func(context.Context) (*sdk.Client, error) { return f.launch(), nil },
		Kill:       func() error { return f.current.Conn.Close() },
	}
}

// run launches the first process and runs the hypervisor suite with o.
func (f *fakeFleet) run(ctx context.Context, o Options) (Result, report) {
	f.t.Helper()
	return runWith(f.t, ctx, pb.Kind_KIND_HYPERVISOR, f.launch(), o)
}

func TestFakeHypervisorPassesTheSuite(t *testing.T) {
	fleet := newFakeFleet(t, allHypervisorCaps, correct)
	res, r := fleet.run(t.Context(), fleet.options())
	require.Empty(t, r.with("FAIL"), r.reasons)
	require.Equal(t, Result{Passed: len(specNames(pb.Kind_KIND_HYPERVISOR))}, res)
	require.Empty(t, fleet.m.running(), "the suite left VMs running")
	require.Len(t, fleet.procs, 3, "one launch, and one relaunch per recovery spec")
	for _, p := range fleet.procs {
		require.JSONEq(t, string(fakeConfigJSON), string(p.configured()), "every process gets Options.ConfigJSON")
	}
}

func TestTestWithRunsTheHypervisorSuiteAsSubtests(t *testing.T) {
	fleet := newFakeFleet(t, allHypervisorCaps, correct)
	TestWith(t, pb.Kind_KIND_HYPERVISOR, fleet.launch(), fleet.options())
	require.Empty(t, fleet.m.running())
}

func TestVMNamesAreUniquePerRun(t *testing.T) {
	fleet := newFakeFleet(t, allHypervisorCaps, correct)
	fleet.run(t.Context(), fleet.options())
	first := fleet.m.startedNames()
	fleet.run(t.Context(), fleet.options())
	second := fleet.m.startedNames()[len(first):]

	require.NotEmpty(t, first)
	require.Len(t, second, len(first))
	all := append(slices.Clone(first), second...)
	require.Len(t, slices.Compact(slices.Sorted(slices.Values(all))), len(all), "a name was used twice: %v", all)
	for _, name := range all {
		require.True(t, strings.HasPrefix(name, "conf-"), name)
	}
}

// Broken variants of the fake hypervisor, each with one bug the suite
// must catch.

// startsAgain starts a new VM on every StartVM, replacing one of the same
// name.
type startsAgain struct{ *fakeHypervisor }

func (b startsAgain) StartVM(ctx context.Context, req *pb.StartVMRequest) (*pb.StartVMResponse, error) {
	b.m.mu.Lock()
	delete(b.m.vms, req.GetSpec().GetName())
	b.m.mu.Unlock()
	return b.fakeHypervisor.StartVM(ctx, req)
}

// ignoresTarget answers every Resize with the size the VM already has.
type ignoresTarget struct{ *fakeHypervisor }

func (b ignoresTarget) Resize(_ context.Context, req *pb.ResizeRequest) (*pb.ResizeResponse, error) {
	b.m.mu.Lock()
	defer b.m.mu.Unlock()
	v, err := b.m.vm(req.GetName())
	if err != nil {
		return nil, err
	}
	return &pb.ResizeResponse{Actual: v.size}, nil
}

// rebootsOnMigration boots the guest afresh on the target instead of
// moving it.
type rebootsOnMigration struct{ *fakeHypervisor }

func (b rebootsOnMigration) Migrate(req *pb.MigrateRequest, stream pb.Hypervisor_MigrateServer) error {
	return b.fakeHypervisor.Migrate(req, rebootOnCompletion{stream, func() {
		b.m.mu.Lock()
		defer b.m.mu.Unlock()
		if v, ok := b.m.vms[req.GetName()]; ok {
			v.booted = time.Now()
		}
	}})
}

// rebootOnCompletion reboots the guest before the client hears the
// migration completed, so no sample it takes afterwards predates the reboot.
type rebootOnCompletion struct {
	pb.Hypervisor_MigrateServer
	reboot func()
}

func (s rebootOnCompletion) Send(p *pb.MigrationProgress) error {
	if p.GetPhase() == pb.MigrationPhase_MIGRATION_PHASE_COMPLETED {
		s.reboot()
	}
	return s.Hypervisor_MigrateServer.Send(p)
}

// migratesSilently sends no progress, only the final phase.
type migratesSilently struct{ *fakeHypervisor }

func (b migratesSilently) Migrate(req *pb.MigrateRequest, stream pb.Hypervisor_MigrateServer) error {
	return b.fakeHypervisor.Migrate(req, finalOnly{stream})
}

type finalOnly struct{ pb.Hypervisor_MigrateServer }

func (f finalOnly) Send(p *pb.MigrationProgress) error {
	if !finalPhase(p.GetPhase()) {
		return nil
	}
	return f.Hypervisor_MigrateServer.Send(p)
}

// forgetsVMs lists only the VMs its own process started, as a plugin that
// keeps its VMs in memory only.
type forgetsVMs struct{ *fakeHypervisor }

func (b forgetsVMs) ListVMs(context.Context, *pb.ListVMsRequest) (*pb.ListVMsResponse, error) {
	return b.list(func(v *fakeVM) bool { return v.startedBy == b.fakeHypervisor })
}

func TestBrokenHypervisorsFailTheRightSpecs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		variant func(*fakeHypervisor) sdk.Base
		failed  map[string]string // spec -> part of its reason
	}{
		{
			name:    "StartVM not idempotent",
			variant: func(f *fakeHypervisor) sdk.Base { return startsAgain{f} },
			failed:  map[string]string{"hypervisor/start": "StartVM must return the running VM, not start another"},
		},
		{
			name:    "Resize ignores its target",
			variant: func(f *fakeHypervisor) sdk.Base { return ignoresTarget{f} },
			failed: map[string]string{
				"hypervisor/resize_up":         "Resize to 3000m vCPU/1GiB: actual is 1000m vCPU/512MiB, want at least the target",
				"hypervisor/resize_down":       "actual is 3000m vCPU/1GiB, want at most 1000m vCPU/512MiB",
				"hypervisor/refused_downscale": "a downscale to 1000m vCPU/512MiB with the guest using 704MiB was not refused",
				"hypervisor/migrate":           "before migrating: Resize to 3000m vCPU/1GiB: actual is 1000m vCPU/512MiB",
			},
		},
		{
			name:    "migration reboots the guest",
			variant: func(f *fakeHypervisor) sdk.Base { return rebootsOnMigration{f} },
			failed:  map[string]string{"hypervisor/migrate": "the guest restarted instead of moving"},
		},
		{
			name:    "migration without progress",
			variant: func(f *fakeHypervisor) sdk.Base { return migratesSilently{f} },
			failed:  map[string]string{"hypervisor/migrate": "Migrate sent COMPLETED and nothing before it"},
		},
		{
			name:    "VMs forgotten by a new process",
			variant: func(f *fakeHypervisor) sdk.Base { return forgetsVMs{f} },
			failed: map[string]string{
				"hypervisor/recover_after_plugin_kill": "after the plugin was killed: ListVMs lists conf-",
				"hypervisor/recover_after_host_loss":   "a new plugin process must find the VMs the old one started",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fleet := newFakeFleet(t, allHypervisorCaps, tc.variant)
			res, r := fleet.run(t.Context(), fleet.options())
			want := slices.Sorted(maps.Keys(tc.failed))
			require.Equal(t, want, r.with("FAIL"), r.reasons)
			require.Equal(t, Result{Passed: len(specNames(pb.Kind_KIND_HYPERVISOR)) - len(want), Failed: len(want)}, res)
			for name, reason := range tc.failed {
				require.Contains(t, r.reasons[name], reason, name)
			}
			require.Empty(t, fleet.m.running(), "cleanup must stop the VMs of failed specs too")
		})
	}
}

func TestHypervisorSpecsSkipWithTheReason(t *testing.T) {
	onlyConfig := Options{ConfigJSON: fakeConfigJSON}
	for _, tc := range []struct {
		name    string
		caps    []string
		opts    Options
		skipped map[string]string
	}{
		{
			name: "no capabilities",
			opts: onlyConfig,
			skipped: map[string]string{
				"hypervisor/resize_up":                 "needs capability hypervisor.vcpu_hotplug or hypervisor.memory_virtio_mem",
				"hypervisor/resize_down":               "needs capability hypervisor.vcpu_offline_shrink or hypervisor.memory_virtio_mem",
				"hypervisor/refused_downscale":         "needs capability hypervisor.guest_agent",
				"hypervisor/migrate":                   "needs capability hypervisor.live_migration",
				"hypervisor/migrate_unknown_node":      "needs capability hypervisor.live_migration",
				"hypervisor/recover_after_plugin_kill": "needs capability hypervisor.recover",
				"hypervisor/recover_after_host_loss":   "needs capability hypervisor.recover",
				"hypervisor/load":                      "needs capability hypervisor.load_generator",
			},
		},
		{
			name: "memory only",
			caps: []string{capMemoryVirtioMem, capGuestAgent},
			opts: onlyConfig,
			skipped: map[string]string{
				"hypervisor/refused_downscale":         "needs capability hypervisor.load_generator",
				"hypervisor/migrate":                   "needs capability hypervisor.live_migration",
				"hypervisor/migrate_unknown_node":      "needs capability hypervisor.live_migration",
				"hypervisor/recover_after_plugin_kill": "needs capability hypervisor.recover",
				"hypervisor/recover_after_host_loss":   "needs capability hypervisor.recover",
				"hypervisor/load":                      "needs capability hypervisor.load_generator",
			},
		},
		{
			name: "one node, no relaunch",
			caps: allHypervisorCaps,
			opts: Options{ConfigJSON: fakeConfigJSON, Nodes: fakeNodes[:1]},
			skipped: map[string]string{
				"hypervisor/migrate":                   "needs two Options.Nodes to migrate between",
				"hypervisor/recover_after_plugin_kill": "needs Options.Relaunch and Options.Kill",
				"hypervisor/recover_after_host_loss":   "needs Options.Relaunch and Options.Kill",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fleet := newFakeFleet(t, tc.caps, correct)
			res, r := fleet.run(t.Context(), tc.opts)
			require.Empty(t, r.with("FAIL"), r.reasons)
			require.Equal(t, Result{Passed: len(specNames(pb.Kind_KIND_HYPERVISOR)) - len(tc.skipped), Skipped: len(tc.skipped)}, res)
			for name, reason := range tc.skipped {
				require.Equal(t, "SKIP", r.verdicts[name], name)
				require.Equal(t, reason, r.reasons[name], name)
			}
			require.Empty(t, fleet.m.running())
		})
	}
}

func TestWithoutConfigJSONTheSchemaDefaultsAreSent(t *testing.T) {
	fleet := newFakeFleet(t, allHypervisorCaps, correct)
	_, r := fleet.run(t.Context(), Options{})
	require.Equal(t, "FAIL", r.verdicts["base/config_schema"])
	require.Contains(t, r.reasons["base/config_schema"], `The argument "kernel" is required`)
	for _, name := range r.with("FAIL") {
		if strings.HasPrefix(name, "hypervisor/") {
			require.Contains(t, r.reasons[name], `setup: decoding defaults: <defaults>:0,0-0: Missing required argument; The argument "kernel" is required`, name)
		}
	}
	require.Equal(t, []string{"hypervisor/recover_after_host_loss", "hypervisor/recover_after_plugin_kill"}, r.with("SKIP"))
	require.Nil(t, fleet.procs[0].configured())
}

// cancelsOnStart cancels the run as soon as it has started a VM, as a
// Ctrl-C at the CLI would.
type cancelsOnStart struct {
	*fakeHypervisor
	cancel context.CancelFunc
}

func (c cancelsOnStart) StartVM(ctx context.Context, req *pb.StartVMRequest) (*pb.StartVMResponse, error) {
	defer c.cancel()
	return c.fakeHypervisor.StartVM(ctx, req)
}

func TestAnInterruptedRunStillStopsItsVMs(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	fleet := newFakeFleet(t, allHypervisorCaps, func(f *fakeHypervisor) sdk.Base { return cancelsOnStart{f, cancel} })
	_, r := fleet.run(ctx, fleet.options())
	require.Equal(t, "FAIL", r.verdicts["hypervisor/start"])
	require.Contains(t, r.reasons["hypervisor/start"], "context canceled")
	require.Equal(t, "not run: context canceled", r.reasons["hypervisor/stop"])
	require.Len(t, r.with("SKIP"), len(hypervisorGroup.specs)-1, "every spec after the interrupt")
	require.NotEmpty(t, fleet.m.startedNames())
	require.Empty(t, fleet.m.running())
}

func TestGuestMetricsWindowsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		name   string
		window *pb.MetricsWindow
		err    string
	}{
		{"a column the suite reads is missing", &pb.MetricsWindow{TUnixNano: []int64{1}}, "metrics.uptime_nanos has 0 values for 1 samples"},
		{"a ragged optional column", func() *pb.MetricsWindow {
			w := (&fakeVM{size: smallSize}).sample(time.Now())
			w.Load5 = []float64{1, 2}
			return w
		}(), "metrics.load5 has 2 values for 1 samples, want one per sample or none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := samples(tc.window)
			require.EqualError(t, err, tc.err)
		})
	}
}
