package control

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/model"
	"github.com/vertigo-autoscaler/vertigo/host/store"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

const gib = 1 << 30

var bounds = model.Bounds{
	Min:  model.Size{VCPUMilli: 500, MemoryBytes: gib / 2},
	Max:  model.Size{VCPUMilli: 4000, MemoryBytes: 4 * gib},
	Unit: model.Size{VCPUMilli: 250, MemoryBytes: gib / 4},
}

type rig struct {
	store *store.Memory
	sc    *scriptedScaler
	pl    *capacityPlacement
	hv    *fakeHypervisor
	rec   *countingRecorder
	clock *fakeClock
	ctrl  *Controller
}

func newRig(t *testing.T, vms ...string) *rig {
	t.Helper()
	st := store.NewMemory()
	r := &rig{
		store: st,
		sc:    &scriptedScaler{goals: map[string]model.Size{}},
		pl:    &capacityPlacement{limit: map[string]model.Size{}, reserved: map[string]model.Size{}},
		hv:    &fakeHypervisor{store: st, sizes: map[string]model.Size{}},
		rec:   &countingRecorder{outcomes: map[string]int{}},
		clock: &fakeClock{t: time.Unix(1_700_000_000, 0)},
	}
	one := model.Size{VCPUMilli: 1000, MemoryBytes: gib}
	for _, name := range vms {
		_, err := st.PutVM(context.Background(), model.VM{Name: name, Node: "n1", Phase: model.PhaseRunning, Bounds: bounds, Size: one, Reserved: one})
		require.NoError(t, err)
		r.hv.sizes[name] = one
		r.pl.reserved[name] = one
		r.pl.limit[name] = bounds.Max
	}
	r.ctrl = New(Config{Store: st, Scaler: r.sc, Placement: r.pl, Hypervisor: r.hv, Guests: staticGuests{}, Clock: r.clock, Recorder: r.rec})
	return r
}

func (r *rig) vm(t *testing.T, name string) model.VM {
	t.Helper()
	vm, err := r.store.GetVM(context.Background(), name)
	require.NoError(t, err)
	return vm
}

func TestGrowthIsReservedBeforeResize(t *testing.T) {
	r := newRig(t, "a")
	goal := model.Size{VCPUMilli: 2000, MemoryBytes: 2 * gib}
	r.sc.goals["a"] = goal
	require.NoError(t, r.ctrl.Tick(context.Background()))

	vm := r.vm(t, "a")
	require.Equal(t, goal, vm.Size)
	require.Equal(t, goal, vm.Reserved)
	require.Empty(t, r.hv.overrun, "the hypervisor never grew a VM past its stored reservation")
	require.Equal(t, OutcomeGrown, vm.LastDecision.Outcome)
	require.Equal(t, []byte("state-of-a"), vm.ScalerState)
}

func TestPartialGrantAndDenial(t *testing.T) {
	r := newRig(t, "part", "none")
	r.pl.limit["part"] = model.Size{VCPUMilli: 1500, MemoryBytes: gib}
	r.pl.limit["none"] = model.Size{VCPUMilli: 1000, MemoryBytes: gib}
	r.sc.goals["part"] = model.Size{VCPUMilli: 3000, MemoryBytes: gib}
	r.sc.goals["none"] = model.Size{VCPUMilli: 3000, MemoryBytes: gib}
	require.NoError(t, r.ctrl.Tick(context.Background()))

	part := r.vm(t, "part")
	require.Equal(t, int64(1500), part.Size.VCPUMilli)
	require.Equal(t, OutcomeGrownPartial, part.LastDecision.Outcome)
	none := r.vm(t, "none")
	require.Equal(t, int64(1000), none.Size.VCPUMilli)
	require.Equal(t, OutcomeDenied, none.LastDecision.Outcome)
	require.Contains(t, none.LastDecision.Reason, "placement: limit")
}

// A shrink is applied by the hypervisor before placement hears of it, so
// placement never hands out capacity a VM still uses.
func TestShrinkReleasesAfterResize(t *testing.T) {
	r := newRig(t, "a")
	r.sc.goals["a"] = model.Size{VCPUMilli: 500, MemoryBytes: gib / 2}
	r.pl.onApply = func(e *pb.PlacementEvent) {
		require.Equal(t, int64(500), r.hv.sizes["a"].VCPUMilli, "placement told before the hypervisor shrank the VM")
	}
	require.NoError(t, r.ctrl.Tick(context.Background()))
	vm := r.vm(t, "a")
	require.Equal(t, model.Size{VCPUMilli: 500, MemoryBytes: gib / 2}, vm.Reserved)
	require.Equal(t, OutcomeShrunk, vm.LastDecision.Outcome)
	require.Len(t, r.pl.applied, 1)
}

// The shrinks of a pass reach placement in one call, after the hypervisor
// applied them all; a refused event keeps only its VM's reservation.
func TestShrinksAreReleasedInOneCall(t *testing.T) {
	for _, parallel := range []int{1, 8} {
		r := newRig(t, "a", "b", "c")
		r.ctrl.cfg.Parallel = parallel
		small := model.Size{VCPUMilli: 500, MemoryBytes: gib / 2}
		for _, name := range []string{"a", "b", "c"} {
			r.sc.goals[name] = small
		}
		r.pl.refuse = map[string]string{"b": "node n1 is draining"}
		r.pl.onApply = func(*pb.PlacementEvent) {
			for _, name := range []string{"a", "b", "c"} {
				require.Equal(t, small, r.hv.sizes[name], "placement told before the hypervisor shrank %s", name)
			}
		}
		require.NoError(t, r.ctrl.Tick(context.Background()))

		require.Equal(t, 1, r.pl.calls, "parallel %d", parallel)
		for name, want := range map[string]model.Size{"a": small, "b": {VCPUMilli: 1000, MemoryBytes: gib}, "c": small} {
			vm := r.vm(t, name)
			require.Equal(t, want, vm.Reserved, "vm %s, parallel %d", name, parallel)
			require.Equal(t, small, vm.Size, "vm %s, parallel %d", name, parallel)
			require.Equal(t, OutcomeShrunk, vm.LastDecision.Outcome)
		}
	}
}

func TestRefusedShrinkIsCountedAndPassedBack(t *testing.T) {
	r := newRig(t, "a")
	r.hv.refuse = "postgres is vacuuming"
	r.sc.goals["a"] = model.Size{VCPUMilli: 500, MemoryBytes: gib / 2}
	require.NoError(t, r.ctrl.Tick(context.Background()))
	r.clock.t = r.clock.t.Add(time.Minute)
	require.NoError(t, r.ctrl.Tick(context.Background()))

	vm := r.vm(t, "a")
	require.Equal(t, uint32(2), vm.DownscaleRefusals)
	require.Equal(t, r.clock.t, vm.LastRefusal)
	require.Equal(t, model.Size{VCPUMilli: 1000, MemoryBytes: gib}, vm.Reserved, "a refused shrink keeps the reservation")
	last := r.sc.asked[len(r.sc.asked)-1].GetVms()[0]
	require.Equal(t, uint32(1), last.GetDownscaleRefusals(), "the scaler sees how often the guest refused")
	require.Contains(t, vm.LastDecision.Reason, "postgres is vacuuming")

	// The scaler may insist; the host then overrides the guest.
	r.sc.reply = func(req *pb.DecideRequest) (*pb.DecideResponse, error) {
		return &pb.DecideResponse{Decisions: []*pb.ScalerDecision{{Vm: "a", Goal: (&model.Size{VCPUMilli: 750, MemoryBytes: gib}).Proto(), Reason: "forced", ForceDownscale: true}}}, nil
	}
	require.NoError(t, r.ctrl.Tick(context.Background()))
	vm = r.vm(t, "a")
	require.Equal(t, int64(750), vm.Size.VCPUMilli)
	require.Zero(t, vm.DownscaleRefusals)
	require.True(t, r.hv.forced[len(r.hv.forced)-1])
}

func TestOutOfBoundsGoalIsClamped(t *testing.T) {
	r := newRig(t, "a")
	r.sc.goals["a"] = model.Size{VCPUMilli: 100_000, MemoryBytes: 1 << 50}
	require.NoError(t, r.ctrl.Tick(context.Background()))
	vm := r.vm(t, "a")
	require.Equal(t, bounds.Max, vm.Size)
	require.Equal(t, 1, r.rec.count(OutcomeClamped))
	require.Contains(t, vm.LastDecision.Reason, "outside bounds")
}

func TestMalformedReplyKeepsEveryVM(t *testing.T) {
	r := newRig(t, "a", "b", "c")
	r.sc.reply = func(req *pb.DecideRequest) (*pb.DecideResponse, error) {
		big := (&model.Size{VCPUMilli: 2000, MemoryBytes: 2 * gib}).Proto()
		return &pb.DecideResponse{Decisions: []*pb.ScalerDecision{
			{Vm: "ghost", Goal: big},
			{Vm: "a", Goal: big}, {Vm: "a", Goal: big}, // duplicate
			{Vm: "b", Goal: &pb.Size{VcpuMilli: -1}},
			// c: missing
		}}, nil
	}
	require.NoError(t, r.ctrl.Tick(context.Background()))
	vms, err := r.store.ListVMs(context.Background())
	require.NoError(t, err)
	require.Len(t, vms, 3)
	for _, vm := range vms {
		require.Equal(t, model.Size{VCPUMilli: 1000, MemoryBytes: gib}, vm.Size, vm.Name)
	}
	require.Equal(t, 4, r.rec.count(OutcomeMalformed))
}

func TestScalerFailureChangesNothing(t *testing.T) {
	r := newRig(t, "a")
	r.sc.reply = func(*pb.DecideRequest) (*pb.DecideResponse, error) { return nil, errors.New("boom") }
	require.ErrorContains(t, r.ctrl.Tick(context.Background()), "boom")
	require.Equal(t, uint64(1), r.vm(t, "a").Version, "the VM was not written")
}

func TestOvergrantIsCappedAtTheAsk(t *testing.T) {
	r := newRig(t, "a")
	r.pl.overgrant = true
	goal := model.Size{VCPUMilli: 2000, MemoryBytes: 2 * gib}
	r.sc.goals["a"] = goal
	require.NoError(t, r.ctrl.Tick(context.Background()))
	require.Equal(t, goal, r.vm(t, "a").Reserved)
}

func TestFailedGrowthKeepsTheReservation(t *testing.T) {
	r := newRig(t, "a")
	r.hv.fail = errors.New("qmp gone")
	goal := model.Size{VCPUMilli: 2000, MemoryBytes: 2 * gib}
	r.sc.goals["a"] = goal
	require.NoError(t, r.ctrl.Tick(context.Background()))
	vm := r.vm(t, "a")
	require.Equal(t, goal, vm.Reserved, "over-reserving is safe; under-reserving is not")
	require.Equal(t, OutcomeError, vm.LastDecision.Outcome)
}

func TestFit(t *testing.T) {
	for _, tc := range []struct{ in, want model.Size }{
		{model.Size{VCPUMilli: 1100, MemoryBytes: gib + 1}, model.Size{VCPUMilli: 1250, MemoryBytes: gib + gib/4}},
		{model.Size{VCPUMilli: 1, MemoryBytes: 1}, bounds.Min},
		{model.Size{VCPUMilli: 9999, MemoryBytes: 9 * gib}, bounds.Max},
	} {
		require.Equal(t, tc.want, fit(tc.in, bounds))
	}
}

func TestPendingVMIsPlacedWhenRoomAppears(t *testing.T) {
	r := newRig(t)
	_, err := r.store.PutVM(context.Background(), model.VM{Name: "late", Phase: model.PhasePending, Bounds: bounds, Size: bounds.Min, Reserved: bounds.Min})
	require.NoError(t, err)
	require.NoError(t, r.ctrl.Tick(context.Background()))
	vm := r.vm(t, "late")
	require.Equal(t, "n1", vm.Node)
	require.Equal(t, model.PhaseDeclared, vm.Phase)
}

type fakeMigrator struct {
	fail  error
	calls []string
	seen  func() // runs during the migration
}

func (m *fakeMigrator) Migrate(_ context.Context, vm, to string, progress func(*pb.MigrationProgress)) ([]byte, error) {
	m.calls = append(m.calls, vm+"->"+to)
	if m.seen != nil {
		m.seen()
	}
	progress(&pb.MigrationProgress{Phase: pb.MigrationPhase_MIGRATION_PHASE_TRANSFERRING, TransferredBytes: 1})
	if m.fail != nil {
		return nil, m.fail
	}
	return []byte("handle-on-" + to), nil
}

func TestMigrateMovesTheReservationFirst(t *testing.T) {
	r := newRig(t, "a")
	mig := &fakeMigrator{}
	r.ctrl.cfg.Migrator = mig
	mig.seen = func() {
		last := r.pl.applied[len(r.pl.applied)-1].GetVmUpsert()
		require.Equal(t, "n2", last.GetNode(), "the target holds the reservation while the VM moves")
		require.Equal(t, model.PhaseMigrating, r.vm(t, "a").Phase)
	}
	var got []*pb.MigrationProgress
	require.NoError(t, r.ctrl.Migrate(context.Background(), "a", "n2", func(p *pb.MigrationProgress) { got = append(got, p) }))
	vm := r.vm(t, "a")
	require.Equal(t, "n2", vm.Node)
	require.Equal(t, model.PhaseRunning, vm.Phase)
	require.Equal(t, "handle-on-n2", string(vm.Handle), "the handle of the VM's new process is kept")
	require.Len(t, got, 1)
	ms := r.ctrl.Migrations()
	require.Equal(t, "completed", ms[0].State)
}

func TestFailedMigrationLeavesTheVMWhereItWas(t *testing.T) {
	r := newRig(t, "a")
	r.ctrl.cfg.Migrator = &fakeMigrator{fail: errors.New("destination died")}
	require.ErrorContains(t, r.ctrl.Migrate(context.Background(), "a", "n2", nil), "destination died")
	vm := r.vm(t, "a")
	require.Equal(t, "n1", vm.Node)
	require.Equal(t, model.PhaseRunning, vm.Phase)
	last := r.pl.applied[len(r.pl.applied)-1].GetVmUpsert()
	require.Equal(t, "n1", last.GetNode(), "the reservation went back to the source")
	ms := r.ctrl.Migrations()
	require.Equal(t, "failed", ms[0].State)
	require.Contains(t, ms[0].Error, "destination died")
}

// Placement is asked for a plan only while a node is above its watermark:
// below it there is nothing to move, and the round trip is saved.
func TestPlansOnlyWhenANodeIsAboveItsWatermark(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, "a")
	_, err := r.store.PutNode(ctx, model.Node{Name: "n1", Capacity: model.Size{VCPUMilli: 4000, MemoryBytes: 8 * gib}, Watermark: 0.5})
	require.NoError(t, err)
	r.pl.plans = []*pb.Migration{{Vm: "a", From: "n1", To: "n2", Reason: "n1 is hot"}}

	require.NoError(t, r.ctrl.Tick(ctx), "1 of the 2 vCPUs under the watermark reserved")
	require.Zero(t, r.pl.planCalls)
	require.Empty(t, r.ctrl.Plans())

	r.sc.goals["a"] = model.Size{VCPUMilli: 2250, MemoryBytes: gib}
	require.NoError(t, r.ctrl.Tick(ctx))
	require.Equal(t, model.Size{VCPUMilli: 2250, MemoryBytes: gib}, r.vm(t, "a").Reserved)
	require.Equal(t, 1, r.pl.planCalls, "2.25 vCPUs reserved: above the watermark")
	require.Len(t, r.ctrl.Plans(), 1)

	r.sc.goals["a"] = model.Size{VCPUMilli: 1000, MemoryBytes: 5 * gib}
	require.NoError(t, r.ctrl.Tick(ctx))
	require.Equal(t, 2, r.pl.planCalls, "5GiB of 8GiB: memory alone is above it too")
}

// A brief controller asks for no reasons and records none: nothing reads
// them in a trace replay.
func TestBriefRecordsNoReason(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, "a")
	r.ctrl = New(Config{Store: r.store, Scaler: r.sc, Placement: r.pl, Hypervisor: r.hv, Guests: staticGuests{}, Clock: r.clock, Recorder: r.rec, Brief: true})
	r.sc.reply = func(req *pb.DecideRequest) (*pb.DecideResponse, error) {
		return &pb.DecideResponse{Decisions: []*pb.ScalerDecision{{Vm: "a", Goal: model.Size{VCPUMilli: 1500, MemoryBytes: gib}.Proto()}}}, nil
	}
	require.NoError(t, r.ctrl.Tick(ctx))
	require.True(t, r.sc.asked[0].GetBrief())
	vm := r.vm(t, "a")
	require.Equal(t, model.Size{VCPUMilli: 1500, MemoryBytes: gib}, vm.Size)
	require.Empty(t, vm.LastDecision.Reason)

	r = newRig(t, "a")
	r.sc.reply = func(req *pb.DecideRequest) (*pb.DecideResponse, error) {
		return &pb.DecideResponse{Decisions: []*pb.ScalerDecision{{Vm: "a", Goal: model.Size{VCPUMilli: 1500, MemoryBytes: gib}.Proto()}}}, nil
	}
	require.NoError(t, r.ctrl.Tick(ctx))
	require.False(t, r.sc.asked[0].GetBrief())
	require.Equal(t, "(the scaler gave no reason)", r.vm(t, "a").LastDecision.Reason, "asked for and missing: said so")
}
