package conformance

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

const (
	capPartialGrants  = "placement.partial_grants"
	capMigrationPlans = "placement.migration_plans"
)

// Every placement spec starts from and leaves behind an empty fleet, so no
// spec depends on another and a failed one leaves nothing behind.
var placementGroup = group{
	name: "placement",
	before: func(ctx context.Context, s *session) error {
		if err := s.configure(ctx); err != nil {
			return err
		}
		return s.reset(ctx)
	},
	after: func(ctx context.Context, s *session) error { return s.reset(ctx) },
	specs: []spec{
		{name: "apply_then_snapshot", check: checkApplyThenSnapshot},
		{name: "apply_idempotent", check: checkApplyIdempotent},
		{name: "apply_refuses_overcommit", check: checkApplyRefusesOvercommit},
		{name: "grow_within_capacity", check: checkGrowWithinCapacity},
		{name: "partial_grants", requires: needs(capPartialGrants), check: checkPartialGrants},
		{name: "grow_idempotent", check: checkGrowIdempotent},
		{name: "decrease_frees_capacity", check: checkDecreaseFreesCapacity},
		{name: "place_fits", check: checkPlaceFits},
		{name: "place_idempotent", check: checkPlaceIdempotent},
		{name: "migration_plans", requires: needs(capMigrationPlans), check: checkMigrationPlans},
		{name: "reset_replay", check: checkResetReplay},
	},
}

func checkApplyThenSnapshot(ctx context.Context, s *session) error {
	events := smallFleet()
	if err := s.apply(ctx, events...); err != nil {
		return err
	}
	snap, err := s.snapshot(ctx)
	if err != nil {
		return err
	}
	for _, ev := range events {
		switch {
		case ev.GetNodeUpsert() != nil:
			want := ev.GetNodeUpsert()
			if got := nodeAccount(snap, want.GetName()); !proto.Equal(got.GetSpec(), want) {
				return fmt.Errorf("node %s: Snapshot has %v, want %v", want.GetName(), got.GetSpec(), want)
			}
		case ev.GetVmUpsert() != nil:
			want := ev.GetVmUpsert()
			if got := vmPlacement(snap, want.GetVm()); !proto.Equal(got, want) {
				return fmt.Errorf("vm %s: Snapshot has %v, want %v", want.GetVm(), got, want)
			}
		}
	}
	return nil
}

func checkApplyIdempotent(ctx context.Context, s *session) error {
	if err := s.apply(ctx, smallFleet()...); err != nil {
		return err
	}
	once, err := s.snapshot(ctx)
	if err != nil {
		return err
	}
	if err := s.apply(ctx, smallFleet()...); err != nil {
		return fmt.Errorf("the same events again: %w", err)
	}
	twice, err := s.snapshot(ctx)
	if err != nil {
		return err
	}
	if !proto.Equal(once, twice) {
		return fmt.Errorf("the same events applied twice changed the Snapshot: %v, then %v", once, twice)
	}
	return nil
}

func checkApplyRefusesOvercommit(ctx context.Context, s *session) error {
	if err := s.apply(ctx, upsertNode("node-a", size(4000, 16*gib), 0.9)); err != nil {
		return err
	}
	events := []*pb.PlacementEvent{
		upsertVM(vmOn("vm-1", "node-a", size(2000, 8*gib))),
		upsertVM(vmOn("vm-too-big", "node-a", size(4000, 16*gib))),
		upsertVM(vmOn("vm-3", "node-a", size(1000, 4*gib))),
	}
	resp, err := s.c.Placement.Apply(ctx, &pb.ApplyRequest{Events: events})
	if err != nil {
		return fmt.Errorf("Apply: %w", err)
	}
	errs := resp.GetErrors()
	if len(errs) != 1 || errs[0].GetIndex() != 1 {
		return fmt.Errorf("Apply answered errors %v, want exactly one, for events[1] (vm-too-big overcommits node-a)", errs)
	}
	if errs[0].GetMessage() == "" {
		return errors.New("Apply refused events[1] without a message")
	}
	snap, err := s.snapshot(ctx)
	if err != nil {
		return err
	}
	for _, name := range []string{"vm-1", "vm-3"} {
		if vmPlacement(snap, name) == nil {
			return fmt.Errorf("%s, accepted in the same call, is missing from the Snapshot", name)
		}
	}
	if vmPlacement(snap, "vm-too-big") != nil {
		return errors.New("vm-too-big was refused but is in the Snapshot")
	}
	return checkNoOvercommit(snap)
}

// fullNodeFleet fills node-a: vm-1 reserves 2000m/8GiB and vm-2
// 4000m/16GiB of its 8000m/32GiB.
func fullNodeFleet() []*pb.PlacementEvent {
	return []*pb.PlacementEvent{
		upsertNode("node-a", size(8000, 32*gib), 0.9),
		upsertVM(vmOn("vm-1", "node-a", size(2000, 8*gib))),
		upsertVM(vmOn("vm-2", "node-a", size(4000, 16*gib))),
	}
}

func checkGrowWithinCapacity(ctx context.Context, s *session) error {
	if err := s.apply(ctx, fullNodeFleet()...); err != nil {
		return err
	}
	// Together the asks want 11000m/44GiB of node-a's 8000m/32GiB.
	_, _, err := s.grow(ctx,
		&pb.GrowthAsk{Vm: "vm-1", Want: size(6000, 24*gib)},
		&pb.GrowthAsk{Vm: "vm-2", Want: size(5000, 20*gib)},
	)
	return err
}

func checkPartialGrants(ctx context.Context, s *session) error {
	if err := s.apply(ctx, fullNodeFleet()...); err != nil {
		return err
	}
	want := size(8000, 32*gib)
	grants, _, err := s.grow(ctx, &pb.GrowthAsk{Vm: "vm-1", Want: want})
	if err != nil {
		return err
	}
	g := grants["vm-1"]
	if !g.GetPartial() || sameSize(g.GetGranted(), want) || fits(g.GetGranted(), size(2000, 8*gib)) {
		return fmt.Errorf("vm-1 at 2000m/8GiB wants %s with 2000m/8GiB free: granted %s (partial %t), want a partial grant above the reservation",
			formatSize(want), formatSize(g.GetGranted()), g.GetPartial())
	}
	return nil
}

func checkGrowIdempotent(ctx context.Context, s *session) error {
	if err := s.apply(ctx, fullNodeFleet()...); err != nil {
		return err
	}
	ask := &pb.GrowthAsk{Vm: "vm-1", Want: size(3000, 12*gib)}
	first, once, err := s.grow(ctx, ask)
	if err != nil {
		return err
	}
	second, twice, err := s.grow(ctx, ask)
	if err != nil {
		return fmt.Errorf("the same ask again: %w", err)
	}
	if !sameSize(first["vm-1"].GetGranted(), second["vm-1"].GetGranted()) || !proto.Equal(once, twice) {
		return fmt.Errorf("the same ask twice: granted %s then %s, Snapshot %v then %v",
			formatSize(first["vm-1"].GetGranted()), formatSize(second["vm-1"].GetGranted()), once, twice)
	}
	return nil
}

func checkDecreaseFreesCapacity(ctx context.Context, s *session) error {
	if err := s.apply(ctx,
		upsertNode("node-a", size(8000, 32*gib), 0.9),
		upsertVM(vmOn("vm-shrinking", "node-a", size(6000, 24*gib))),
		upsertVM(vmOn("vm-growing", "node-a", size(2000, 8*gib))),
	); err != nil {
		return err
	}
	if err := s.apply(ctx, upsertVM(vmOn("vm-shrinking", "node-a", size(2000, 8*gib)))); err != nil {
		return fmt.Errorf("decrease: %w", err)
	}
	want := size(5000, 20*gib)
	grants, _, err := s.grow(ctx, &pb.GrowthAsk{Vm: "vm-growing", Want: want})
	if err != nil {
		return err
	}
	if got := grants["vm-growing"].GetGranted(); !sameSize(got, want) {
		return fmt.Errorf("after vm-shrinking gave back 4000m/16GiB, vm-growing asking for %s was granted %s", formatSize(want), formatSize(got))
	}
	return nil
}

func checkPlaceFits(ctx context.Context, s *session) error {
	if err := s.apply(ctx,
		upsertNode("node-full", size(8000, 32*gib), 0.9),
		upsertNode("node-small", size(4000, 16*gib), 0.9),
		upsertVM(vmOn("vm-big", "node-full", size(7000, 28*gib))),
	); err != nil {
		return err
	}
	snap, err := s.snapshot(ctx)
	if err != nil {
		return err
	}
	small := size(2000, 8*gib)
	resp, err := s.c.Placement.Place(ctx, &pb.PlaceRequest{Vm: "vm-new", Size: small, Unit: unit})
	if err != nil {
		return fmt.Errorf("Place: %w", err)
	}
	n := nodeAccount(snap, resp.GetNode())
	if n == nil || !fits(add(n.GetReserved(), small), n.GetSpec().GetCapacity()) {
		return fmt.Errorf("Place of %s chose node %q, where it does not fit (it fits only on node-small)", formatSize(small), resp.GetNode())
	}
	huge := size(6000, 24*gib)
	resp, err = s.c.Placement.Place(ctx, &pb.PlaceRequest{Vm: "vm-huge", Size: huge, Unit: unit})
	if err != nil {
		return fmt.Errorf("Place: %w", err)
	}
	if resp.GetNode() != "" {
		return fmt.Errorf("Place of %s, which fits nowhere, chose node %q", formatSize(huge), resp.GetNode())
	}
	return nil
}

func checkPlaceIdempotent(ctx context.Context, s *session) error {
	// Two identical nodes, so only a stable tie-break gives the same answer.
	if err := s.apply(ctx,
		upsertNode("node-a", size(8000, 32*gib), 0.9),
		upsertNode("node-b", size(8000, 32*gib), 0.9),
	); err != nil {
		return err
	}
	req := &pb.PlaceRequest{Vm: "vm-new", Size: size(2000, 8*gib), Unit: unit}
	first, err := s.c.Placement.Place(ctx, req)
	if err != nil {
		return fmt.Errorf("Place: %w", err)
	}
	second, err := s.c.Placement.Place(ctx, req)
	if err != nil {
		return fmt.Errorf("Place: %w", err)
	}
	if first.GetNode() == "" || first.GetNode() != second.GetNode() {
		return fmt.Errorf("the same Place twice on an empty fleet chose %q then %q", first.GetNode(), second.GetNode())
	}
	return nil
}

func checkMigrationPlans(ctx context.Context, s *session) error {
	// node-hot is at 7000m/28GiB, above its 0.75 watermark (6000m/24GiB);
	// node-warm and node-spare each have room under their watermark for
	// one of its 2000m/8GiB VMs.
	if err := s.apply(ctx,
		upsertNode("node-hot", size(8000, 32*gib), 0.75),
		upsertNode("node-warm", size(8000, 32*gib), 0.8),
		upsertNode("node-spare", size(4000, 16*gib), 0.9),
		upsertVM(vmOn("vm-1", "node-hot", size(2000, 8*gib))),
		upsertVM(vmOn("vm-2", "node-hot", size(2000, 8*gib))),
		upsertVM(vmOn("vm-3", "node-hot", size(2000, 8*gib))),
		upsertVM(vmOn("vm-4", "node-hot", size(1000, 4*gib))),
		upsertVM(vmOn("vm-5", "node-warm", size(4000, 16*gib))),
	); err != nil {
		return err
	}
	before, err := s.snapshot(ctx)
	if err != nil {
		return err
	}
	resp, err := s.c.Placement.PlanMigrations(ctx, &pb.PlanMigrationsRequest{})
	if err != nil {
		return fmt.Errorf("PlanMigrations: %w", err)
	}
	if err := checkPlan(before, resp.GetMigrations(), "node-hot"); err != nil {
		return err
	}
	after, err := s.snapshot(ctx)
	if err != nil {
		return err
	}
	if !proto.Equal(before, after) {
		return fmt.Errorf("PlanMigrations changed the Snapshot: %v, then %v", before, after)
	}
	return nil
}

// checkPlan plays plan's moves on snap's accounts, in order, and checks
// that each is a real move that overcommits no target and that hot ends
// under its watermark.
func checkPlan(snap *pb.SnapshotResponse, plan []*pb.Migration, hot string) error {
	reserved := map[string]*pb.Size{}
	for _, n := range snap.GetNodes() {
		reserved[n.GetSpec().GetName()] = n.GetReserved()
	}
	moved := map[string]bool{}
	for i, m := range plan {
		v := vmPlacement(snap, m.GetVm())
		to := nodeAccount(snap, m.GetTo())
		switch {
		case v == nil:
			return fmt.Errorf("migrations[%d]: unknown vm %q", i, m.GetVm())
		case moved[m.GetVm()]:
			return fmt.Errorf("migrations[%d]: vm %s is moved twice", i, m.GetVm())
		case m.GetFrom() != v.GetNode():
			return fmt.Errorf("migrations[%d]: vm %s moved from %q, but it is on %s", i, m.GetVm(), m.GetFrom(), v.GetNode())
		case to == nil || m.GetTo() == m.GetFrom():
			return fmt.Errorf("migrations[%d]: vm %s moved to %q, which is no other node", i, m.GetVm(), m.GetTo())
		}
		moved[m.GetVm()] = true
		reserved[m.GetFrom()] = sub(reserved[m.GetFrom()], v.GetReserved())
		reserved[m.GetTo()] = add(reserved[m.GetTo()], v.GetReserved())
		if !fits(reserved[m.GetTo()], to.GetSpec().GetCapacity()) {
			return fmt.Errorf("migrations[%d]: moving vm %s overcommits %s: %s of %s", i, m.GetVm(), m.GetTo(),
				formatSize(reserved[m.GetTo()]), formatSize(to.GetSpec().GetCapacity()))
		}
	}
	n := nodeAccount(snap, hot)
	if !underWatermark(reserved[hot], n.GetSpec().GetCapacity(), n.GetSpec().GetWatermark()) {
		return fmt.Errorf("after the %d planned moves %s still reserves %s, above %.2f of %s", len(plan), hot,
			formatSize(reserved[hot]), n.GetSpec().GetWatermark(), formatSize(n.GetSpec().GetCapacity()))
	}
	return nil
}

func checkResetReplay(ctx context.Context, s *session) error {
	if err := s.apply(ctx, smallFleet()...); err != nil {
		return err
	}
	// A grant makes the state more than the events that were applied.
	if _, _, err := s.grow(ctx, &pb.GrowthAsk{Vm: "vm-1", Want: size(3000, 12*gib)}); err != nil {
		return err
	}
	want, err := s.snapshot(ctx)
	if err != nil {
		return err
	}
	if err := s.reset(ctx); err != nil {
		return err
	}
	empty, err := s.snapshot(ctx)
	if err != nil {
		return err
	}
	if len(empty.GetNodes())+len(empty.GetVms()) > 0 {
		return fmt.Errorf("after Reset the Snapshot still holds %v", empty)
	}
	if err := s.apply(ctx, replay(want)...); err != nil {
		return fmt.Errorf("replaying the Snapshot: %w", err)
	}
	got, err := s.snapshot(ctx)
	if err != nil {
		return err
	}
	if !proto.Equal(want, got) {
		return fmt.Errorf("Reset and replay of %v gave %v", want, got)
	}
	return nil
}
