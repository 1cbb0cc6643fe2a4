package main

import (
	"github.com/vertigo-autoscaler/vertigo/plugins/placement/fleet"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// Conversions between the wire and the fleet. A missing message reads as
// its zero value; the fleet then names the field it lacks.

func sizeFrom(s *pb.Size) fleet.Size {
	return fleet.Size{VCPUMilli: s.GetVcpuMilli(), MemoryBytes: s.GetMemoryBytes()}
}

func sizeProto(s fleet.Size) *pb.Size {
	return &pb.Size{VcpuMilli: s.VCPUMilli, MemoryBytes: s.MemoryBytes}
}

func nodeSpecFrom(n *pb.NodeSpec) fleet.NodeSpec {
	return fleet.NodeSpec{Name: n.GetName(), Capacity: sizeFrom(n.GetCapacity()), Watermark: n.GetWatermark()}
}

func nodeSpecProto(n fleet.NodeSpec) *pb.NodeSpec {
	return &pb.NodeSpec{Name: n.Name, Capacity: sizeProto(n.Capacity), Watermark: n.Watermark}
}

func vmFrom(v *pb.VMPlacement) fleet.VM {
	return fleet.VM{
		Name:                v.GetVm(),
		Node:                v.GetNode(),
		Reserved:            sizeFrom(v.GetReserved()),
		Unit:                sizeFrom(v.GetUnit()),
		DirtyBytesPerSecond: v.GetDirtyBytesPerSecond(),
	}
}

func vmProto(v fleet.VM) *pb.VMPlacement {
	return &pb.VMPlacement{
		Vm:                  v.Name,
		Node:                v.Node,
		Reserved:            sizeProto(v.Reserved),
		Unit:                sizeProto(v.Unit),
		DirtyBytesPerSecond: v.DirtyBytesPerSecond,
	}
}

func snapshotProto(s fleet.Snapshot) *pb.SnapshotResponse {
	resp := &pb.SnapshotResponse{
		Nodes: make([]*pb.NodeAccount, len(s.Nodes)),
		Vms:   make([]*pb.VMPlacement, len(s.VMs)),
	}
	for i, n := range s.Nodes {
		resp.Nodes[i] = &pb.NodeAccount{Spec: nodeSpecProto(n.Spec), Reserved: sizeProto(n.Reserved), Vms: n.VMs}
	}
	for i, v := range s.VMs {
		resp.Vms[i] = vmProto(v)
	}
	return resp
}

func migrationsProto(ms []fleet.Migration) []*pb.Migration {
	out := make([]*pb.Migration, len(ms))
	for i, m := range ms {
		out[i] = &pb.Migration{Vm: m.VM, From: m.From, To: m.To, Reason: m.Reason}
	}
	return out
}
