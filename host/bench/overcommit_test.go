package bench

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/model"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

func snapshotNode(name string, capacity model.Size, vms ...string) *pb.NodeAccount {
	return &pb.NodeAccount{Spec: &pb.NodeSpec{Name: name, Capacity: capacity.Proto(), Watermark: 0.9}, Vms: vms}
}

func snapshotVM(name, node string, reserved model.Size) *pb.VMPlacement {
	return &pb.VMPlacement{Vm: name, Node: node, Reserved: reserved.Proto(), Unit: vmUnit.Proto()}
}

func TestOvercommitsCleanSnapshot(t *testing.T) {
	capacity := model.Size{VCPUMilli: 4000, MemoryBytes: 8 * gib}
	s := &pb.SnapshotResponse{
		Nodes: []*pb.NodeAccount{snapshotNode("a", capacity, "vm-1", "vm-2"), snapshotNode("b", capacity, "vm-3")},
		Vms: []*pb.VMPlacement{
			// vm-1 and vm-2 fill node a exactly: at capacity is not over it.
			snapshotVM("vm-1", "a", model.Size{VCPUMilli: 3000, MemoryBytes: 2 * gib}),
			snapshotVM("vm-2", "a", model.Size{VCPUMilli: 1000, MemoryBytes: 6 * gib}),
			snapshotVM("vm-3", "b", model.Size{VCPUMilli: 500, MemoryBytes: gib}),
		},
	}
	require.Empty(t, overcommits(s))
}

func TestOvercommitsSumsVMsNotTheNodesClaim(t *testing.T) {
	capacity := model.Size{VCPUMilli: 4000, MemoryBytes: 8 * gib}
	a := snapshotNode("a", capacity, "vm-1", "vm-2")
	// The plugin claims a modest reservation; its VMs say otherwise.
	a.Reserved = model.Size{VCPUMilli: 1000, MemoryBytes: gib}.Proto()
	s := &pb.SnapshotResponse{
		Nodes: []*pb.NodeAccount{a, snapshotNode("b", capacity)},
		Vms: []*pb.VMPlacement{
			snapshotVM("vm-1", "a", model.Size{VCPUMilli: 1000, MemoryBytes: 4 * gib}),
			snapshotVM("vm-2", "a", model.Size{VCPUMilli: 1000, MemoryBytes: 4*gib + 1}),
		},
	}
	v := overcommits(s)
	require.Len(t, v, 1)
	require.Contains(t, v[0], "node a")
}

func TestOvercommitsFindsAVMOnTwoNodes(t *testing.T) {
	capacity := model.Size{VCPUMilli: 4000, MemoryBytes: 8 * gib}
	small := model.Size{VCPUMilli: 500, MemoryBytes: gib}
	s := &pb.SnapshotResponse{
		// b lists vm-1 too, although vm-1 says it is on a.
		Nodes: []*pb.NodeAccount{snapshotNode("a", capacity, "vm-1"), snapshotNode("b", capacity, "vm-1", "vm-2")},
		Vms:   []*pb.VMPlacement{snapshotVM("vm-1", "a", small), snapshotVM("vm-2", "b", small)},
	}
	require.Equal(t, []string{"vm vm-1 is on 2 nodes: a, b"}, overcommits(s))
}

func TestOvercommitsFindsAVMOnAnUnknownNode(t *testing.T) {
	s := &pb.SnapshotResponse{Vms: []*pb.VMPlacement{snapshotVM("vm-1", "ghost", model.Size{VCPUMilli: 500, MemoryBytes: gib})}}
	v := overcommits(s)
	require.Len(t, v, 1)
	require.Contains(t, v[0], `"ghost"`)
}
