package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

var seed = flag.Uint64("seed", 20261127, "seed of the randomised plugin test")

// TestRandomOperationsThroughGRPC drives the plugin as the host would, over
// gRPC, and checks the invariants on a Snapshot after every operation. A
// "restart" moves to a new plugin instance, replaying the snapshot into it.
func TestRandomOperationsThroughGRPC(t *testing.T) {
	const steps = 5000
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(*seed, 2))
	nodeName := func() string { return fmt.Sprintf("n%d", rng.IntN(8)) }
	vmName := func() string { return fmt.Sprintf("vm%02d", rng.IntN(60)) }
	randSize := func() *pb.Size {
		return &pb.Size{VcpuMilli: int64(rng.IntN(17)) * 500, MemoryBytes: uint64(1+rng.IntN(32)) * gib / 2}
	}

	c := connect(t)
	var step int
	var op string
	defer func() {
		if t.Failed() {
			t.Logf("failed at step %d (%s) with -seed %d", step, op, *seed)
		}
	}()
	placed := 0
	s := snapshot(t, c)
	for step = range steps {
		switch r := rng.IntN(100); {
		case r < 8:
			op = "node upsert"
			apply(t, c, nodeUpsert(nodeName(), &pb.Size{VcpuMilli: int64(4+rng.IntN(29)) * 1000, MemoryBytes: uint64(8+rng.IntN(57)) * gib}, []float64{0.6, 0.8, 0.9, 1}[rng.IntN(4)]))
		case r < 11:
			op = "node remove"
			apply(t, c, &pb.PlacementEvent{Event: &pb.PlacementEvent_NodeRemove{NodeRemove: nodeName()}})
		case r < 25:
			op = "vm upsert"
			apply(t, c, &pb.PlacementEvent{Event: &pb.PlacementEvent_VmUpsert{VmUpsert: &pb.VMPlacement{
				Vm: vmName(), Node: nodeName(), Reserved: randSize(), Unit: size(1, 1), DirtyBytesPerSecond: uint64(rng.IntN(3)) << 24,
			}}})
		case r < 40:
			op = "place"
			resp, err := c.Place(ctx, &pb.PlaceRequest{Vm: vmName(), Size: randSize(), Unit: &pb.Size{VcpuMilli: 500, MemoryBytes: gib / 2}})
			require.NoError(t, err)
			if resp.GetNode() != "" {
				placed++
			}
		case r < 65:
			op = "grow"
			asks := make([]*pb.GrowthAsk, 1+rng.IntN(4))
			for i := range asks {
				asks[i] = &pb.GrowthAsk{Vm: vmName(), Want: randSize()}
			}
			resp, err := c.Grow(ctx, &pb.GrowRequest{Asks: asks})
			require.NoError(t, err)
			require.Len(t, resp.GetGrants(), len(asks))
		case r < 78:
			op = "shrink"
			if len(s.GetVms()) > 0 {
				vm := s.GetVms()[rng.IntN(len(s.GetVms()))]
				vm.Reserved.VcpuMilli /= 2
				vm.Reserved.MemoryBytes /= 2
				require.Empty(t, apply(t, c, &pb.PlacementEvent{Event: &pb.PlacementEvent_VmUpsert{VmUpsert: vm}}), "a decrease applies at once")
			}
		case r < 88:
			op = "vm remove"
			require.Empty(t, apply(t, c, &pb.PlacementEvent{Event: &pb.PlacementEvent_VmRemove{VmRemove: vmName()}}))
		case r < 98:
			op = "migration plan executed"
			executePlan(t, c, s)
		default:
			op = "plugin restart"
			fresh := connect(t)
			_, err := fresh.Reset(ctx, &pb.ResetRequest{})
			require.NoError(t, err)
			require.Empty(t, apply(t, fresh, replayEvents(s)...))
			requireProtoEqual(t, s, snapshot(t, fresh), "the replayed fleet is the fleet")
			c = fresh
		}
		s = snapshot(t, c)
		require.NoError(t, checkSnapshot(s))
	}
	require.Positive(t, placed, "the run never placed a VM, so it tested little")
}

// executePlan runs a plan as the host does: each migration reported as the
// VM on its new node, every one of which must be accepted.
func executePlan(t *testing.T, c pb.PlacementClient, s *pb.SnapshotResponse) {
	t.Helper()
	plan, err := c.PlanMigrations(context.Background(), &pb.PlanMigrationsRequest{})
	require.NoError(t, err)
	vms := map[string]*pb.VMPlacement{}
	for _, vm := range s.GetVms() {
		vms[vm.GetVm()] = vm
	}
	for _, m := range plan.GetMigrations() {
		vm, ok := vms[m.GetVm()]
		require.True(t, ok, "plan moves vm %s, which is not in the fleet or moves twice", m.GetVm())
		delete(vms, m.GetVm())
		require.Equal(t, vm.GetNode(), m.GetFrom())
		vm.Node = m.GetTo()
		require.Empty(t, apply(t, c, &pb.PlacementEvent{Event: &pb.PlacementEvent_VmUpsert{VmUpsert: vm}}), "migration %v overcommits", m)
	}
}

// replayEvents is what the host sends a restarted plugin: every node, then
// every VM.
func replayEvents(s *pb.SnapshotResponse) []*pb.PlacementEvent {
	var events []*pb.PlacementEvent
	for _, n := range s.GetNodes() {
		events = append(events, &pb.PlacementEvent{Event: &pb.PlacementEvent_NodeUpsert{NodeUpsert: n.GetSpec()}})
	}
	for _, vm := range s.GetVms() {
		events = append(events, &pb.PlacementEvent{Event: &pb.PlacementEvent_VmUpsert{VmUpsert: vm}})
	}
	return events
}
