package conformance

import (
	"context"
	"fmt"
	"slices"
	"strings"

	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

func upsertNode(name string, capacity *pb.Size, watermark float64) *pb.PlacementEvent {
	return &pb.PlacementEvent{Event: &pb.PlacementEvent_NodeUpsert{
		NodeUpsert: &pb.NodeSpec{Name: name, Capacity: capacity, Watermark: watermark},
	}}
}

func vmOn(name, node string, reserved *pb.Size) *pb.VMPlacement {
	return &pb.VMPlacement{Vm: name, Node: node, Reserved: reserved, Unit: unit}
}

func upsertVM(p *pb.VMPlacement) *pb.PlacementEvent {
	return &pb.PlacementEvent{Event: &pb.PlacementEvent_VmUpsert{VmUpsert: p}}
}

// smallFleet is two nodes with different watermarks and three VMs, one of
// them with a known dirty rate.
func smallFleet() []*pb.PlacementEvent {
	busy := vmOn("vm-3", "node-b", size(4000, 16*gib))
	busy.DirtyBytesPerSecond = 64 * mib
	return []*pb.PlacementEvent{
		upsertNode("node-a", size(8000, 32*gib), 0.9),
		upsertNode("node-b", size(16000, 64*gib), 0.8),
		upsertVM(vmOn("vm-1", "node-a", size(2000, 8*gib))),
		upsertVM(vmOn("vm-2", "node-a", size(1000, 4*gib))),
		upsertVM(busy),
	}
}

// replay turns a snapshot back into the events that build it, as the host
// does after a placement plugin restarts.
func replay(snap *pb.SnapshotResponse) []*pb.PlacementEvent {
	var events []*pb.PlacementEvent
	for _, n := range snap.GetNodes() {
		events = append(events, &pb.PlacementEvent{Event: &pb.PlacementEvent_NodeUpsert{NodeUpsert: n.GetSpec()}})
	}
	for _, v := range snap.GetVms() {
		events = append(events, upsertVM(v))
	}
	return events
}

// apply applies events that must all be accepted.
func (s *session) apply(ctx context.Context, events ...*pb.PlacementEvent) error {
	resp, err := s.c.Placement.Apply(ctx, &pb.ApplyRequest{Events: events})
	if err != nil {
		return fmt.Errorf("Apply: %w", err)
	}
	if errs := resp.GetErrors(); len(errs) > 0 {
		return fmt.Errorf("Apply refused events[%d] (%v): %s", errs[0].GetIndex(), eventAt(events, errs[0].GetIndex()), errs[0].GetMessage())
	}
	return nil
}

func eventAt(events []*pb.PlacementEvent, i uint32) any {
	if int(i) >= len(events) {
		return "no such event"
	}
	return events[i]
}

func (s *session) reset(ctx context.Context) error {
	if _, err := s.c.Placement.Reset(ctx, &pb.ResetRequest{}); err != nil {
		return fmt.Errorf("Reset: %w", err)
	}
	return nil
}

// snapshot returns the plugin's accounts sorted by name, after checking
// that they add up: every VM on a known node, listed there, and each node
// reserving the sum of its VMs.
func (s *session) snapshot(ctx context.Context) (*pb.SnapshotResponse, error) {
	snap, err := s.c.Placement.Snapshot(ctx, &pb.SnapshotRequest{})
	if err != nil {
		return nil, fmt.Errorf("Snapshot: %w", err)
	}
	slices.SortFunc(snap.Nodes, func(a, b *pb.NodeAccount) int { return strings.Compare(a.GetSpec().GetName(), b.GetSpec().GetName()) })
	slices.SortFunc(snap.Vms, func(a, b *pb.VMPlacement) int { return strings.Compare(a.GetVm(), b.GetVm()) })
	sums := map[string]*pb.Size{}
	names := map[string][]string{}
	for _, v := range snap.GetVms() {
		if nodeAccount(snap, v.GetNode()) == nil {
			return nil, fmt.Errorf("Snapshot: vm %s is on unknown node %q", v.GetVm(), v.GetNode())
		}
		sums[v.GetNode()] = add(sums[v.GetNode()], v.GetReserved())
		names[v.GetNode()] = append(names[v.GetNode()], v.GetVm())
	}
	for _, n := range snap.GetNodes() {
		slices.Sort(n.Vms)
		name := n.GetSpec().GetName()
		if !slices.Equal(n.GetVms(), names[name]) {
			return nil, fmt.Errorf("Snapshot: node %s lists vms %q, but the vms on it are %q", name, n.GetVms(), names[name])
		}
		if !sameSize(n.GetReserved(), sums[name]) {
			return nil, fmt.Errorf("Snapshot: node %s reserves %s, but its vms add up to %s", name, formatSize(n.GetReserved()), formatSize(sums[name]))
		}
	}
	return snap, nil
}

func nodeAccount(snap *pb.SnapshotResponse, name string) *pb.NodeAccount {
	for _, n := range snap.GetNodes() {
		if n.GetSpec().GetName() == name {
			return n
		}
	}
	return nil
}

func vmPlacement(snap *pb.SnapshotResponse, name string) *pb.VMPlacement {
	for _, v := range snap.GetVms() {
		if v.GetVm() == name {
			return v
		}
	}
	return nil
}

// checkNoOvercommit checks that no node reserves more than its capacity.
func checkNoOvercommit(snap *pb.SnapshotResponse) error {
	for _, n := range snap.GetNodes() {
		if !fits(n.GetReserved(), n.GetSpec().GetCapacity()) {
			return fmt.Errorf("node %s reserves %s, above its capacity %s", n.GetSpec().GetName(), formatSize(n.GetReserved()), formatSize(n.GetSpec().GetCapacity()))
		}
	}
	return nil
}

// grow asks for growth and checks the answer against the protocol: one
// grant per ask, between the old reservation and want, growing in whole
// units unless it reaches want, reserved as granted, no node overcommitted.
func (s *session) grow(ctx context.Context, asks ...*pb.GrowthAsk) (map[string]*pb.Grant, *pb.SnapshotResponse, error) {
	before, err := s.snapshot(ctx)
	if err != nil {
		return nil, nil, err
	}
	resp, err := s.c.Placement.Grow(ctx, &pb.GrowRequest{Asks: asks})
	if err != nil {
		return nil, nil, fmt.Errorf("Grow: %w", err)
	}
	grants := map[string]*pb.Grant{}
	for _, g := range resp.GetGrants() {
		if grants[g.GetVm()] != nil {
			return nil, nil, fmt.Errorf("Grow: two grants for vm %s", g.GetVm())
		}
		grants[g.GetVm()] = g
	}
	if len(grants) != len(asks) {
		return nil, nil, fmt.Errorf("Grow: %d grants for %d asks, want one per ask", len(grants), len(asks))
	}
	after, err := s.snapshot(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, a := range asks {
		g := grants[a.GetVm()]
		if g == nil {
			return nil, nil, fmt.Errorf("Grow: no grant for vm %s", a.GetVm())
		}
		if err := checkGrant(vmPlacement(before, a.GetVm()), a.GetWant(), g.GetGranted()); err != nil {
			return nil, nil, fmt.Errorf("Grow: vm %s: %w", a.GetVm(), err)
		}
		if got := vmPlacement(after, a.GetVm()).GetReserved(); !sameSize(got, g.GetGranted()) {
			return nil, nil, fmt.Errorf("Grow: vm %s granted %s but Snapshot reserves %s", a.GetVm(), formatSize(g.GetGranted()), formatSize(got))
		}
	}
	if err := checkNoOvercommit(after); err != nil {
		return nil, nil, fmt.Errorf("after Grow: %w", err)
	}
	return grants, after, nil
}

func checkGrant(old *pb.VMPlacement, want, granted *pb.Size) error {
	u := old.GetUnit()
	if u.GetVcpuMilli() <= 0 || u.GetMemoryBytes() == 0 {
		return fmt.Errorf("Snapshot before Grow has no unit for it: %v", old)
	}
	if !fits(old.GetReserved(), granted) || !fits(granted, want) {
		return fmt.Errorf("granted %s, not between the reservation %s and want %s", formatSize(granted), formatSize(old.GetReserved()), formatSize(want))
	}
	grew := sub(granted, old.GetReserved())
	if granted.GetVcpuMilli() != want.GetVcpuMilli() && grew.GetVcpuMilli()%u.GetVcpuMilli() != 0 ||
		granted.GetMemoryBytes() != want.GetMemoryBytes() && grew.GetMemoryBytes()%u.GetMemoryBytes() != 0 {
		return fmt.Errorf("granted %s: growth %s is not in units of %s", formatSize(granted), formatSize(grew), formatSize(u))
	}
	return nil
}
