// Package control is the host's control loop: for every running VM, metrics
// go to the scaler, goals are checked, growth is granted by placement before
// the hypervisor applies it, and shrinks are applied by the hypervisor (with
// the guest's consent) before placement is told. The store records every
// step, so a crash anywhere leaves a state the next host reads back.
//
// The loop knows its collaborators only through the interfaces in ports.go
// and its store through store.Store: it does not know whether plugins are
// processes or whether state lives in files or in Kubernetes.
package control

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vertigo-autoscaler/vertigo/host/model"
	"github.com/vertigo-autoscaler/vertigo/host/store"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// Outcomes of one VM's decision, as counted by the Recorder.
const (
	OutcomeUnchanged    = "unchanged"
	OutcomeGrown        = "grown"
	OutcomeGrownPartial = "grown_partial"
	OutcomeShrunk       = "shrunk"
	OutcomeRefused      = "refused_by_guest"
	OutcomeDenied       = "denied"
	OutcomeClamped      = "clamped"
	OutcomeMalformed    = "malformed"
	OutcomeError        = "error"
	OutcomeSkipped      = "skipped"
)

// Config wires a Controller. Hypervisor and Guests may be nil: then VMs are
// only declared and accounted, and nothing is resized.
type Config struct {
	Store      store.Store
	Scaler     Scaler
	Placement  Placement
	Hypervisor Hypervisor
	Guests     Guests
	// Migrator executes placement's migration plans; nil leaves plans
	// shown, not acted on.
	Migrator       Migrator
	Clock          Clock
	Recorder       Recorder
	Log            hclog.Logger
	ConsentTimeout time.Duration
	// Parallel bounds how many VMs are resized at once (a guest's consent
	// may take up to ConsentTimeout; one slow guest must not stall others).
	Parallel int
	// Brief asks the scaler for goals without reasons, for a caller that
	// keeps none (a trace replay); decisions are recorded without them.
	Brief bool
}

// Controller runs decisions. Passes are serialised, so two passes never
// race on the same VM.
type Controller struct {
	cfg Config
	log hclog.Logger

	mu sync.Mutex // one pass at a time

	plansMu    sync.Mutex
	plans      []*pb.Migration
	migrations map[string]*MigrationStatus // by VM, the last one each
}

// MigrationStatus is a migration in flight or just ended, for operators.
type MigrationStatus struct {
	VM, From, To, Reason string
	State                string // planned, running, completed, failed
	Progress             *pb.MigrationProgress
	Error                string
}

// New returns a Controller; zero optional fields take defaults.
func New(cfg Config) *Controller {
	if cfg.Clock == nil {
		cfg.Clock = RealClock{}
	}
	if cfg.Recorder == nil {
		cfg.Recorder = nopRecorder{}
	}
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	if cfg.ConsentTimeout <= 0 {
		cfg.ConsentTimeout = 5 * time.Second
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 8
	}
	return &Controller{cfg: cfg, log: cfg.Log.Named("control"), migrations: map[string]*MigrationStatus{}}
}

// Plans is the last migration plan placement proposed.
func (c *Controller) Plans() []*pb.Migration {
	c.plansMu.Lock()
	defer c.plansMu.Unlock()
	return append([]*pb.Migration(nil), c.plans...)
}

// Tick runs one pass over every running VM.
func (c *Controller) Tick(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	vms, err := c.cfg.Store.ListVMs(ctx)
	if err != nil {
		return fmt.Errorf("listing VMs: %w", err)
	}
	if err := c.placePending(ctx, vms); err != nil {
		return err
	}
	if err := c.pass(ctx, vms); err != nil {
		return err
	}
	return c.plan(ctx)
}

// DecideNow runs a pass for one VM, e.g. on a guest's pressure event.
func (c *Controller) DecideNow(ctx context.Context, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	vm, err := c.cfg.Store.GetVM(ctx, name)
	if err != nil {
		return err
	}
	return c.pass(ctx, []model.VM{vm})
}

// placePending retries placing VMs that fitted nowhere: capacity may have
// been freed by shrinks or added by a new node since.
func (c *Controller) placePending(ctx context.Context, vms []model.VM) error {
	for _, vm := range vms {
		if vm.Phase != model.PhasePending {
			continue
		}
		resp, err := c.cfg.Placement.Place(ctx, &pb.PlaceRequest{Vm: vm.Name, Size: vm.Reserved.Proto(), Unit: vm.Bounds.Unit.Proto()})
		if err != nil {
			return fmt.Errorf("placement place: %w", err)
		}
		if resp.GetNode() == "" {
			continue
		}
		vm.Node, vm.Phase, vm.Message = resp.GetNode(), model.PhaseDeclared, ""
		if _, err := c.cfg.Store.PutVM(ctx, vm); err != nil {
			// Placement holds a reservation the store lacks; the replay
			// after the next restart drops it. Release it now instead.
			_, _ = c.cfg.Placement.Apply(ctx, []*pb.PlacementEvent{{Event: &pb.PlacementEvent_VmRemove{VmRemove: vm.Name}}})
			return fmt.Errorf("recording placement of %q: %w", vm.Name, err)
		}
		c.log.Info("placed a pending VM", "vm", vm.Name, "node", vm.Node)
	}
	return nil
}

// pass decides for the VMs that are running and have metrics, in one
// scaler call and one placement call.
func (c *Controller) pass(ctx context.Context, vms []model.VM) error {
	if c.cfg.Guests == nil || c.cfg.Hypervisor == nil {
		return nil
	}
	now := c.cfg.Clock.Now()
	req := &pb.DecideRequest{NowUnixNano: now.UnixNano(), Brief: c.cfg.Brief}
	var due []model.VM
	for _, vm := range vms {
		if vm.Phase != model.PhaseRunning {
			continue
		}
		w, events, ok := c.cfg.Guests.Window(vm.Name)
		if !ok {
			continue
		}
		due = append(due, vm)
		req.Vms = append(req.Vms, &pb.ScalerInput{
			Vm:                  vm.Name,
			Current:             vm.Size.Proto(),
			Bounds:              vm.Bounds.Proto(),
			Metrics:             w,
			Events:              events,
			State:               vm.ScalerState,
			DownscaleRefusals:   vm.DownscaleRefusals,
			LastRefusalUnixNano: unixNano(vm.LastRefusal),
		})
	}
	if len(due) == 0 {
		return nil
	}
	resp, err := c.cfg.Scaler.Decide(ctx, req)
	if err != nil {
		for range due {
			c.cfg.Recorder.Decision(OutcomeError)
		}
		return fmt.Errorf("scaler: %w", err)
	}
	goals, problems := checkDecisions(due, resp, !c.cfg.Brief)
	for _, p := range problems {
		c.log.Warn("refusing part of the scaler's reply", "problem", p)
		c.cfg.Recorder.Decision(OutcomeMalformed)
	}

	grants, err := c.grow(ctx, due, goals)
	if err != nil {
		return err
	}
	done := make([]*resizing, len(due))
	c.each(ctx, len(due), func(ctx context.Context, i int) {
		if g, ok := goals[due[i].Name]; ok {
			done[i] = c.resize(ctx, now, due[i], g, grants[due[i].Name])
		}
	})
	c.release(ctx, done)
	for _, r := range done {
		if r != nil {
			c.record(ctx, now, r)
		}
	}
	return nil
}

// grow asks placement, in one call, for every VM whose goal exceeds its
// reservation, and records what was granted before anything is resized: the
// store must never hold less than a VM may use.
func (c *Controller) grow(ctx context.Context, vms []model.VM, goals map[string]goal) (map[string]*pb.Grant, error) {
	var asks []*pb.GrowthAsk
	for _, vm := range vms {
		g, ok := goals[vm.Name]
		if !ok {
			continue
		}
		want := maxSize(vm.Reserved, g.size)
		if want != vm.Reserved {
			asks = append(asks, &pb.GrowthAsk{Vm: vm.Name, Want: want.Proto()})
		}
	}
	grants := map[string]*pb.Grant{}
	if len(asks) == 0 {
		return grants, nil
	}
	resp, err := c.cfg.Placement.Grow(ctx, asks)
	if err != nil {
		return nil, fmt.Errorf("placement grow: %w", err)
	}
	for _, g := range resp {
		grants[g.GetVm()] = g
	}
	return grants, nil
}

// resizing is one VM's decision on its way: resized by the hypervisor,
// waiting for placement to hear of a shrink and for the store to record it.
type resizing struct {
	vm      model.VM
	goal    goal
	outcome string
	notes   []string
	log     hclog.Logger
	// released is the reservation a shrink lets go of once placement
	// agrees; nil when nothing shrank.
	released *model.Size
}

// resize carries out one VM's checked goal on the hypervisor. It returns
// nil when the decision cannot be recorded at all.
func (c *Controller) resize(ctx context.Context, now time.Time, vm model.VM, g goal, grant *pb.Grant) *resizing {
	r := &resizing{goal: g, outcome: OutcomeUnchanged, log: c.log.With("vm", vm.Name)}
	if g.clamped != "" {
		r.log.Warn("clamped the scaler's goal", "detail", g.clamped)
		c.cfg.Recorder.Decision(OutcomeClamped)
		r.notes = append(r.notes, g.clamped)
	}

	// Growth: record the grant, then resize up to it.
	if grant != nil {
		granted := c.checkGrant(r.log, vm, g.size, grant)
		switch {
		case granted == vm.Reserved:
			r.outcome = OutcomeDenied
			c.cfg.Recorder.Grant("none")
			c.cfg.Recorder.Denial()
			r.notes = append(r.notes, "placement: "+grant.GetReason())
		case grant.GetPartial():
			r.outcome = OutcomeGrownPartial
			c.cfg.Recorder.Grant("partial")
			r.notes = append(r.notes, "placement: "+grant.GetReason())
		default:
			r.outcome = OutcomeGrown
			c.cfg.Recorder.Grant("full")
		}
		if granted != vm.Reserved {
			vm.Reserved = granted
			saved, err := c.cfg.Store.PutVM(ctx, vm)
			if err != nil {
				r.log.Error("recording a grant failed; placement will be replayed from the store", "error", err)
				c.cfg.Recorder.Decision(OutcomeError)
				return nil
			}
			vm = saved
			target := model.Size{VCPUMilli: max(vm.Size.VCPUMilli, min(g.size.VCPUMilli, granted.VCPUMilli)), MemoryBytes: max(vm.Size.MemoryBytes, min(g.size.MemoryBytes, granted.MemoryBytes))}
			res, err := c.cfg.Hypervisor.Resize(ctx, vm.Name, target, false, c.cfg.ConsentTimeout)
			if err != nil {
				// The reservation stays: the VM may have grown in part, and
				// over-reserving is safe where under-reserving is not.
				r.log.Error("growing the VM failed", "target", target, "error", err)
				r.outcome = OutcomeError
				r.notes = append(r.notes, "resize failed: "+err.Error())
			} else {
				vm.Size = res.Actual
			}
		}
	}

	// Shrink: the guest consents (or is overridden) and the hypervisor
	// applies; release then tells placement.
	down := minSize(vm.Size, g.size)
	if down != vm.Size && r.outcome != OutcomeError {
		res, err := c.cfg.Hypervisor.Resize(ctx, vm.Name, down, g.force, c.cfg.ConsentTimeout)
		switch {
		case err != nil:
			r.log.Error("shrinking the VM failed", "target", down, "error", err)
			r.outcome = OutcomeError
			r.notes = append(r.notes, "resize failed: "+err.Error())
		case res.Refused:
			vm.DownscaleRefusals++
			vm.LastRefusal = now
			r.outcome = OutcomeRefused
			r.notes = append(r.notes, "guest refused: "+res.Reason)
		default:
			vm.Size = res.Actual
			vm.DownscaleRefusals = 0
			released := minSize(vm.Reserved, maxSize(res.Actual, down))
			r.released = &released
			if r.outcome == OutcomeUnchanged {
				r.outcome = OutcomeShrunk
			}
		}
	}
	r.vm = vm
	return r
}

// release tells placement, in one call, of every shrink the hypervisor has
// applied, so placement never hands out capacity a VM still uses. A VM
// whose event fails keeps its larger reservation: placement is replayed
// from the store after a restart and will agree again.
func (c *Controller) release(ctx context.Context, done []*resizing) {
	var shrunk []*resizing
	var events []*pb.PlacementEvent
	for _, r := range done {
		if r != nil && r.released != nil {
			shrunk = append(shrunk, r)
			events = append(events, &pb.PlacementEvent{Event: &pb.PlacementEvent_VmUpsert{VmUpsert: withReserved(r.vm, *r.released).Placement()}})
		}
	}
	if len(events) == 0 {
		return
	}
	errs, err := c.cfg.Placement.Apply(ctx, events)
	if err != nil {
		c.log.Error("telling placement of shrinks failed", "vms", len(events), "error", err)
		return
	}
	refused := make(map[uint32]string, len(errs))
	for _, e := range errs {
		refused[e.GetIndex()] = e.GetMessage()
	}
	for i, r := range shrunk {
		if msg, ok := refused[uint32(i)]; ok {
			r.log.Error("placement refused a shrink", "refused", msg)
			continue
		}
		r.vm.Reserved = *r.released
	}
}

// record stores a VM's decision and its outcome.
func (c *Controller) record(ctx context.Context, now time.Time, r *resizing) {
	vm, outcome := r.vm, r.outcome
	vm.ScalerState = r.goal.state
	vm.LastDecision = &model.Decision{At: now, Goal: r.goal.size, Reason: joinNotes(r.goal.reason, r.notes), Outcome: outcome}
	if _, err := c.cfg.Store.PutVM(ctx, vm); err != nil {
		r.log.Error("recording the decision failed", "error", err)
		outcome = OutcomeError
	}
	c.cfg.Recorder.Decision(outcome)
	if outcome != OutcomeUnchanged {
		r.log.Info("decision", "outcome", outcome, "goal", r.goal.size, "size", vm.Size, "reserved", vm.Reserved, "reason", vm.LastDecision.Reason)
	}
}

// checkGrant refuses a grant that shrinks a reservation or exceeds the ask:
// placement may only hand out what was asked for.
func (c *Controller) checkGrant(log hclog.Logger, vm model.VM, want model.Size, g *pb.Grant) model.Size {
	granted := model.SizeFrom(g.GetGranted())
	ask := maxSize(vm.Reserved, want)
	fixed := maxSize(vm.Reserved, minSize(granted, ask))
	if fixed != granted {
		log.Warn("placement granted outside [reserved, ask]; using the nearest valid grant", "granted", granted, "reserved", vm.Reserved, "ask", ask)
		c.cfg.Recorder.Decision(OutcomeMalformed)
	}
	return fixed
}

// plan asks placement which VMs should move off nodes above their
// watermark, and carries the plan out when a Migrator is configured. With
// no node above its watermark there is nothing to move, and no round trip:
// the store holds every reservation placement does (placement is replayed
// from it), and a trace replay ticks millions of times.
func (c *Controller) plan(ctx context.Context) error {
	above, err := c.anyAboveWatermark(ctx)
	if err != nil {
		return err
	}
	var plans []*pb.Migration
	if above {
		plans, err = c.cfg.Placement.PlanMigrations(ctx)
		if err != nil {
			return fmt.Errorf("placement plan: %w", err)
		}
	}
	c.plansMu.Lock()
	c.plans = plans
	c.plansMu.Unlock()
	if c.cfg.Migrator == nil {
		return nil
	}
	for _, m := range plans {
		if err := c.migrate(ctx, m.GetVm(), m.GetTo(), m.GetReason(), nil); err != nil {
			c.log.Error("planned migration failed; the VM stays where it was", "vm", m.GetVm(), "to", m.GetTo(), "error", err)
		}
	}
	return nil
}

// anyAboveWatermark reports whether some node's reservations exceed its
// watermark in either dimension, as placement floors it; within a
// millionth counts as above, so rounding never skips a plan.
func (c *Controller) anyAboveWatermark(ctx context.Context) (bool, error) {
	nodes, err := c.cfg.Store.ListNodes(ctx)
	if err != nil {
		return false, fmt.Errorf("listing nodes: %w", err)
	}
	vms, err := c.cfg.Store.ListVMs(ctx)
	if err != nil {
		return false, fmt.Errorf("listing VMs: %w", err)
	}
	reserved := make(map[string]model.Size, len(nodes))
	for _, vm := range vms {
		if vm.Node != "" {
			r := reserved[vm.Node]
			reserved[vm.Node] = model.Size{VCPUMilli: r.VCPUMilli + vm.Reserved.VCPUMilli, MemoryBytes: r.MemoryBytes + vm.Reserved.MemoryBytes}
		}
	}
	over := func(used, capacity, watermark float64) bool { return used > watermark*capacity*(1-1e-6) }
	for _, n := range nodes {
		r := reserved[n.Name]
		if over(float64(r.VCPUMilli), float64(n.Capacity.VCPUMilli), n.Watermark) ||
			over(float64(r.MemoryBytes), float64(n.Capacity.MemoryBytes), n.Watermark) {
			return true, nil
		}
	}
	return false, nil
}

// Migrate moves a VM to another node now (an operator's request).
func (c *Controller) Migrate(ctx context.Context, vm, to string, progress func(*pb.MigrationProgress)) error {
	if c.cfg.Migrator == nil {
		return errors.New("no hypervisor plugin that migrates is configured")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.migrate(ctx, vm, to, "requested by an operator", progress)
}

// Migrations are the last migration of each VM that had one.
func (c *Controller) Migrations() []MigrationStatus {
	c.plansMu.Lock()
	defer c.plansMu.Unlock()
	out := make([]MigrationStatus, 0, len(c.migrations))
	for _, m := range c.migrations {
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].VM < out[j].VM })
	return out
}

// migrate runs with the pass lock held, so no grant can take the capacity
// the VM's move needs or the source capacity a failed move falls back to.
// Placement moves the reservation to the target first: it refuses a target
// the VM does not fit, and while the move runs the target is never
// overcommitted. On failure the reservation goes back to the source.
func (c *Controller) migrate(ctx context.Context, name, to, reason string, progress func(*pb.MigrationProgress)) error {
	vm, err := c.cfg.Store.GetVM(ctx, name)
	if err != nil {
		return err
	}
	if vm.Node == to {
		return nil
	}
	if vm.Phase != model.PhaseRunning {
		return fmt.Errorf("vm %q is %s, not running", name, vm.Phase)
	}
	from := vm.Node
	st := &MigrationStatus{VM: name, From: from, To: to, Reason: reason, State: "running"}
	update := func(f func(*MigrationStatus)) {
		c.plansMu.Lock()
		f(st)
		c.migrations[name] = st
		c.plansMu.Unlock()
	}
	update(func(*MigrationStatus) {})
	fail := func(err error) error {
		update(func(s *MigrationStatus) { s.State, s.Error = "failed", err.Error() })
		return err
	}
	moved := vm
	moved.Node = to
	if errs, err := c.cfg.Placement.Apply(ctx, []*pb.PlacementEvent{{Event: &pb.PlacementEvent_VmUpsert{VmUpsert: moved.Placement()}}}); err != nil {
		return fail(fmt.Errorf("placement: %w", err))
	} else if len(errs) > 0 {
		return fail(fmt.Errorf("placement refuses the move: %s", errs[0].GetMessage()))
	}
	vm.Phase = model.PhaseMigrating
	if vm, err = c.cfg.Store.PutVM(ctx, vm); err != nil {
		return fail(err)
	}
	handle, err := c.cfg.Migrator.Migrate(ctx, name, to, func(p *pb.MigrationProgress) {
		update(func(s *MigrationStatus) { s.Progress = p })
		if progress != nil {
			progress(p)
		}
	})
	vm.Phase = model.PhaseRunning
	if err != nil {
		// The VM still runs on the source: give it its reservation back.
		if errs, aerr := c.cfg.Placement.Apply(ctx, []*pb.PlacementEvent{{Event: &pb.PlacementEvent_VmUpsert{VmUpsert: vm.Placement()}}}); aerr != nil || len(errs) > 0 {
			c.log.Error("restoring the source reservation after a failed migration; placement will be replayed", "vm", name, "error", aerr, "refused", errs)
		}
		if _, perr := c.cfg.Store.PutVM(ctx, vm); perr != nil {
			c.log.Error("recording a failed migration", "vm", name, "error", perr)
		}
		return fail(err)
	}
	vm.Node, vm.Handle = to, handle
	if _, err := c.cfg.Store.PutVM(ctx, vm); err != nil {
		return fail(fmt.Errorf("the VM runs on %s but recording it failed: %w", to, err))
	}
	update(func(s *MigrationStatus) { s.State = "completed" })
	c.log.Info("migrated", "vm", name, "from", from, "to", to, "reason", reason)
	return nil
}

// each runs f for VMs 0..n-1 with at most Parallel at once. At Parallel 1
// it runs them in the caller: a goroutine per VM per pass would only cost.
func (c *Controller) each(ctx context.Context, n int, f func(ctx context.Context, i int)) {
	if c.cfg.Parallel == 1 {
		for i := range n {
			f(ctx, i)
		}
		return
	}
	sem := make(chan struct{}, c.cfg.Parallel)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(ctx, i)
		}()
	}
	wg.Wait()
}

// ReplayPlacement rebuilds placement's state from the store: after the
// plugin restarts, and when the host starts. It is the only way placement
// learns the fleet, so a restarted plugin never decides on partial state.
func ReplayPlacement(ctx context.Context, p Placement, s store.Store) error {
	nodes, err := s.ListNodes(ctx)
	if err != nil {
		return err
	}
	vms, err := s.ListVMs(ctx)
	if err != nil {
		return err
	}
	events := make([]*pb.PlacementEvent, 0, len(nodes)+len(vms))
	for _, n := range nodes {
		events = append(events, &pb.PlacementEvent{Event: &pb.PlacementEvent_NodeUpsert{NodeUpsert: n.Proto()}})
	}
	for _, vm := range vms {
		if vm.Node != "" {
			events = append(events, &pb.PlacementEvent{Event: &pb.PlacementEvent_VmUpsert{VmUpsert: vm.Placement()}})
		}
	}
	if err := p.Reset(ctx); err != nil {
		return fmt.Errorf("placement reset: %w", err)
	}
	errs, err := p.Apply(ctx, events)
	if err != nil {
		return fmt.Errorf("placement replay: %w", err)
	}
	if len(errs) > 0 {
		var all []error
		for _, e := range errs {
			all = append(all, fmt.Errorf("event %d: %s", e.GetIndex(), e.GetMessage()))
		}
		return fmt.Errorf("placement refused the stored fleet: %w", errors.Join(all...))
	}
	return nil
}

func withReserved(vm model.VM, r model.Size) model.VM {
	vm.Reserved = r
	return vm
}

func maxSize(a, b model.Size) model.Size {
	return model.Size{VCPUMilli: max(a.VCPUMilli, b.VCPUMilli), MemoryBytes: max(a.MemoryBytes, b.MemoryBytes)}
}

func minSize(a, b model.Size) model.Size {
	return model.Size{VCPUMilli: min(a.VCPUMilli, b.VCPUMilli), MemoryBytes: min(a.MemoryBytes, b.MemoryBytes)}
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func joinNotes(reason string, notes []string) string {
	sort.Strings(notes)
	for _, n := range notes {
		reason += "; " + n
	}
	return reason
}
