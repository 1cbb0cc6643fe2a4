package main

import (
	"fmt"

	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// checkSnapshot checks the invariants as the host sees them: no node's
// reserved exceeds its capacity, every VM is on exactly one node (listed by
// it, and by no other), and each node's reserved is the sum of its VMs'.
func checkSnapshot(s *pb.SnapshotResponse) error {
	vms := map[string]*pb.VMPlacement{}
	for _, vm := range s.GetVms() {
		if _, dup := vms[vm.GetVm()]; dup {
			return fmt.Errorf("vm %s listed twice", vm.GetVm())
		}
		vms[vm.GetVm()] = vm
	}
	listedOn := map[string]string{}
	for _, n := range s.GetNodes() {
		name, capacity := n.GetSpec().GetName(), n.GetSpec().GetCapacity()
		var vcpu int64
		var memory uint64
		for _, vmName := range n.GetVms() {
			if other, ok := listedOn[vmName]; ok {
				return fmt.Errorf("vm %s is on nodes %s and %s", vmName, other, name)
			}
			listedOn[vmName] = name
			vm, ok := vms[vmName]
			if !ok || vm.GetNode() != name {
				return fmt.Errorf("node %s lists vm %s, which is on node %q", name, vmName, vm.GetNode())
			}
			vcpu += vm.GetReserved().GetVcpuMilli()
			memory += vm.GetReserved().GetMemoryBytes()
		}
		r := n.GetReserved()
		if r.GetVcpuMilli() != vcpu || r.GetMemoryBytes() != memory {
			return fmt.Errorf("node %s: reserved %v, but its VMs sum to %d mvCPU/%d bytes", name, r, vcpu, memory)
		}
		if r.GetVcpuMilli() > capacity.GetVcpuMilli() || r.GetMemoryBytes() > capacity.GetMemoryBytes() {
			return fmt.Errorf("node %s overcommitted: %v reserved of %v", name, r, capacity)
		}
	}
	if len(listedOn) != len(vms) {
		return fmt.Errorf("nodes list %d VMs, the snapshot holds %d", len(listedOn), len(vms))
	}
	return nil
}
