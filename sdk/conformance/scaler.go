package conformance

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

const (
	capPressureEvents  = "scaler.pressure_events"
	capCacheWorkingSet = "scaler.cache_working_set"
)

const (
	// idleTick and idleFor are how often and how long an idle VM is decided
	// on before a scaler must have aimed below its size: an hour is longer
	// than any sensible downscale delay.
	idleTick = 15 * time.Second
	idleFor  = time.Hour
)

var scalerGroup = group{
	name:   "scaler",
	before: func(ctx context.Context, s *session) error { return s.configure(ctx) },
	specs: []spec{
		{name: "empty_request", check: checkEmptyDecide},
		{name: "one_decision_per_vm", check: checkOneDecisionPerVM},
		{name: "goals_within_bounds", check: checkGoalsWithinBounds},
		{name: "reason_given", check: checkReasonGiven},
		{name: "fixed_size", check: checkFixedSize},
		{name: "deterministic", check: checkDeterministic},
		{name: "heavy_load_grows", check: checkHeavyLoadGrows},
		{name: "idle_scales_down", check: checkIdleScalesDown},
		{name: "memory_pressure_event", requires: needs(capPressureEvents), check: checkMemoryPressureEvent},
		{name: "cache_working_set", requires: needs(capCacheWorkingSet), check: checkCacheWorkingSet},
		{name: "invalid_request", check: checkInvalidRequest},
	},
}

// decide returns the response's decisions after checking there is one per
// VM, in the request's order, which every other scaler spec relies on.
func decide(ctx context.Context, s *session, req *pb.DecideRequest) ([]*pb.ScalerDecision, error) {
	resp, err := s.c.Scaler.Decide(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("Decide: %w", err)
	}
	got := resp.GetDecisions()
	if len(got) != len(req.GetVms()) {
		return nil, fmt.Errorf("%d decisions for %d VMs, want one per VM", len(got), len(req.GetVms()))
	}
	for i, d := range got {
		if want := req.GetVms()[i].GetVm(); d.GetVm() != want {
			return nil, fmt.Errorf("decisions[%d].vm is %q, want %q: one decision per VM, in the request's order", i, d.GetVm(), want)
		}
	}
	return got, nil
}

// decideOne decides for a single VM.
func decideOne(ctx context.Context, s *session, now time.Time, in *pb.ScalerInput) (*pb.ScalerDecision, error) {
	ds, err := decide(ctx, s, decideRequest(now, in))
	if err != nil {
		return nil, err
	}
	return ds[0], nil
}

func checkEmptyDecide(ctx context.Context, s *session) error {
	_, err := decide(ctx, s, decideRequest(epoch))
	return err
}

func checkOneDecisionPerVM(ctx context.Context, s *session) error {
	_, err := decide(ctx, s, mixedRequest(epoch))
	return err
}

func checkGoalsWithinBounds(ctx context.Context, s *session) error {
	req := mixedRequest(epoch)
	ds, err := decide(ctx, s, req)
	if err != nil {
		return err
	}
	for i, d := range ds {
		if err := checkGoal(d.GetGoal(), req.GetVms()[i].GetBounds()); err != nil {
			return fmt.Errorf("decisions[%d] (%s): %w", i, d.GetVm(), err)
		}
	}
	return nil
}

// checkGoal checks that goal is within b and, unless it is the max, a
// multiple of the unit.
func checkGoal(goal *pb.Size, b *pb.Bounds) error {
	if goal == nil {
		return errors.New("goal: missing")
	}
	if err := checkDimension("goal.vcpu_milli", goal.GetVcpuMilli(), b.GetMin().GetVcpuMilli(), b.GetMax().GetVcpuMilli(), b.GetUnit().GetVcpuMilli()); err != nil {
		return err
	}
	return checkDimension("goal.memory_bytes", goal.GetMemoryBytes(), b.GetMin().GetMemoryBytes(), b.GetMax().GetMemoryBytes(), b.GetUnit().GetMemoryBytes())
}

func checkDimension[T int64 | uint64](field string, goal, lo, hi, unit T) error {
	switch {
	case goal < lo || goal > hi:
		return fmt.Errorf("%s: %d outside bounds [%d, %d]", field, goal, lo, hi)
	case goal != hi && goal%unit != 0:
		return fmt.Errorf("%s: %d is neither a multiple of the unit %d nor the max %d", field, goal, unit, hi)
	}
	return nil
}

func checkReasonGiven(ctx context.Context, s *session) error {
	ds, err := decide(ctx, s, mixedRequest(epoch))
	if err != nil {
		return err
	}
	for i, d := range ds {
		if d.GetReason() == "" {
			return fmt.Errorf("decisions[%d] (%s): reason is empty", i, d.GetVm())
		}
	}
	return nil
}

func checkFixedSize(ctx context.Context, s *session) error {
	fixed := size(2000, 8*gib)
	b := &pb.Bounds{Min: fixed, Max: fixed, Unit: unit}
	req := decideRequest(epoch,
		input("vm-fixed-busy", fixed, b, epoch, busy(fixed)),
		input("vm-fixed-idle", fixed, b, epoch, idle),
		// Bounds narrowed below the VM's size by the operator.
		input("vm-fixed-larger", size(4000, 16*gib), b, epoch, idle),
	)
	ds, err := decide(ctx, s, req)
	if err != nil {
		return err
	}
	for i, d := range ds {
		if !sameSize(d.GetGoal(), fixed) {
			return fmt.Errorf("decisions[%d] (%s): goal %s, want min == max == %s", i, d.GetVm(), formatSize(d.GetGoal()), formatSize(fixed))
		}
	}
	return nil
}

// checkDeterministic asks everything twice: the first tick, then the next
// one carrying the state the first returned.
func checkDeterministic(ctx context.Context, s *session) error {
	req := mixedRequest(epoch)
	for tick := range 2 {
		first, err := s.c.Scaler.Decide(ctx, req)
		if err != nil {
			return fmt.Errorf("Decide: %w", err)
		}
		second, err := s.c.Scaler.Decide(ctx, req)
		if err != nil {
			return fmt.Errorf("Decide: %w", err)
		}
		if !proto.Equal(first, second) {
			return fmt.Errorf("tick %d: the same request got two answers: %v then %v", tick, first, second)
		}
		req = mixedRequest(epoch.Add(idleTick))
		for i, d := range first.GetDecisions() {
			if i < len(req.GetVms()) {
				req.GetVms()[i].State = d.GetState()
			}
		}
	}
	return nil
}

func checkHeavyLoadGrows(ctx context.Context, s *session) error {
	current := size(2000, 8*gib)
	d, err := decideOne(ctx, s, epoch, input("vm-busy", current, wideBounds, epoch, busy(current)))
	if err != nil {
		return err
	}
	if !fits(current, d.GetGoal()) {
		return fmt.Errorf("load1 %.0f on %s with memory nearly full: goal %s is below the current size (reason %q)",
			busy(current).load1, formatSize(current), formatSize(d.GetGoal()), d.GetReason())
	}
	return nil
}

// checkIdleScalesDown decides for an idle VM tick after tick, as the host
// would, carrying the state over, until the goal drops below its size.
func checkIdleScalesDown(ctx context.Context, s *session) error {
	current := size(8000, 32*gib)
	var last *pb.ScalerDecision
	for at := epoch; at.Before(epoch.Add(idleFor)); at = at.Add(idleTick) {
		in := input("vm-idle", current, wideBounds, at, idle)
		in.State = last.GetState()
		d, err := decideOne(ctx, s, at, in)
		if err != nil {
			return fmt.Errorf("after %s: %w", at.Sub(epoch), err)
		}
		if fits(d.GetGoal(), current) && !sameSize(d.GetGoal(), current) {
			return nil
		}
		last = d
	}
	return fmt.Errorf("idle for %s (load1 %.2f, %s used), the goal never dropped below %s: last goal %s (reason %q)",
		idleFor, idle.load1, formatBytes(idle.memoryUsed), formatSize(current), formatSize(last.GetGoal()), last.GetReason())
}

func checkMemoryPressureEvent(ctx context.Context, s *session) error {
	current := size(2000, 8*gib)
	in := input("vm-pressure", current, wideBounds, epoch, usage{load1: 1, memoryUsed: 5 * gib})
	in.Events = []*pb.GuestEvent{{
		Type:             pb.GuestEventType_GUEST_EVENT_TYPE_MEMORY_PRESSURE,
		TUnixNano:        epoch.Add(-time.Second).UnixNano(),
		Message:          "memory used above threshold",
		MemoryUsedBytes:  current.GetMemoryBytes() - current.GetMemoryBytes()/16,
		MemoryTotalBytes: current.GetMemoryBytes(),
	}}
	d, err := decideOne(ctx, s, epoch, in)
	if err != nil {
		return err
	}
	if d.GetGoal().GetMemoryBytes() <= current.GetMemoryBytes() {
		return fmt.Errorf("after a memory pressure event, memory goal %s is not above the current %s (max %s, reason %q)",
			formatBytes(d.GetGoal().GetMemoryBytes()), formatBytes(current.GetMemoryBytes()),
			formatBytes(wideBounds.GetMax().GetMemoryBytes()), d.GetReason())
	}
	return nil
}

func checkCacheWorkingSet(ctx context.Context, s *session) error {
	current := size(2000, 8*gib)
	quiet := usage{load1: 0.5, memoryUsed: 2 * gib}
	narrow := &pb.Bounds{Min: size(1000, 2*gib), Max: size(8000, 32*gib), Unit: unit}
	req := decideRequest(epoch,
		withCache(input("vm-cache-fits", current, wideBounds, epoch, quiet), 20*gib),
		withCache(input("vm-cache-beyond-max", current, narrow, epoch, quiet), 100*gib),
	)
	ds, err := decide(ctx, s, req)
	if err != nil {
		return err
	}
	for i, d := range ds {
		in := req.GetVms()[i]
		ws := in.GetCache().GetBytes()[0]
		want := min(ws, in.GetBounds().GetMax().GetMemoryBytes())
		if d.GetGoal().GetMemoryBytes() < want {
			return fmt.Errorf("decisions[%d] (%s): cache working set %s on %s of memory: memory goal %s, want at least %s (reason %q)",
				i, d.GetVm(), formatBytes(ws), formatBytes(current.GetMemoryBytes()),
				formatBytes(d.GetGoal().GetMemoryBytes()), formatBytes(want), d.GetReason())
		}
	}
	return nil
}

// withCache gives in a working set of ws over every window, so that no
// estimator can read a smaller one.
func withCache(in *pb.ScalerInput, ws uint64) *pb.ScalerInput {
	in.Cache = &pb.CacheWorkingSet{WindowSeconds: []uint32{60, 300, 900}, Bytes: []uint64{ws, ws, ws}}
	return in
}

func checkInvalidRequest(ctx context.Context, s *session) error {
	b := &pb.Bounds{Min: wideBounds.GetMin(), Max: wideBounds.GetMax(), Unit: size(0, 0)}
	_, err := s.c.Scaler.Decide(ctx, decideRequest(epoch, input("vm-zero-unit", size(2000, 8*gib), b, epoch, idle)))
	if st := status.Convert(err); st.Code() != codes.InvalidArgument {
		return fmt.Errorf("bounds.unit of zero: got code %s %q, want InvalidArgument", st.Code(), st.Message())
	}
	return nil
}
