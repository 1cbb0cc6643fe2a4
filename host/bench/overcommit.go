package bench

import (
	"fmt"
	"slices"
	"strings"

	"github.com/vertigo-autoscaler/vertigo/host/model"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// overcommits checks placement's two invariants on a snapshot without
// trusting the plugin's own sums: each node's reservation is added up from
// the VMs that name it and compared with its capacity in both dimensions,
// and a VM is "on" every node that lists it or that it names, which must be
// exactly one. It returns one description per violation, in a stable order.
func overcommits(s *pb.SnapshotResponse) []string {
	capacity := map[string]model.Size{}
	for _, n := range s.GetNodes() {
		capacity[n.GetSpec().GetName()] = model.SizeFrom(n.GetSpec().GetCapacity())
	}
	reserved := map[string]model.Size{}
	nodesOf := map[string]map[string]bool{}
	on := func(vm, node string) {
		if nodesOf[vm] == nil {
			nodesOf[vm] = map[string]bool{}
		}
		nodesOf[vm][node] = true
	}
	for _, n := range s.GetNodes() {
		for _, vm := range n.GetVms() {
			on(vm, n.GetSpec().GetName())
		}
	}
	for _, v := range s.GetVms() {
		on(v.GetVm(), v.GetNode())
		r := reserved[v.GetNode()]
		r.VCPUMilli += v.GetReserved().GetVcpuMilli()
		r.MemoryBytes += v.GetReserved().GetMemoryBytes()
		reserved[v.GetNode()] = r
	}

	var violations []string
	for _, node := range sortedKeys(reserved) {
		r := reserved[node]
		c, known := capacity[node]
		switch {
		case !known:
			violations = append(violations, fmt.Sprintf("node %q is not in the snapshot, yet its VMs reserve %s", node, r))
		case !r.Fits(c):
			violations = append(violations, fmt.Sprintf("node %s: its VMs reserve %s, capacity is %s", node, r, c))
		}
	}
	for _, vm := range sortedKeys(nodesOf) {
		if nodes := sortedKeys(nodesOf[vm]); len(nodes) > 1 {
			violations = append(violations, fmt.Sprintf("vm %s is on %d nodes: %s", vm, len(nodes), strings.Join(nodes, ", ")))
		}
	}
	return violations
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
