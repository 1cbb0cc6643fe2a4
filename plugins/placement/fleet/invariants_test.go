package fleet

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// checkInvariants verifies the accounting from both sides, the nodes' VM
// sets and the fleet's VM index, so that a VM on two nodes, on none, or
// counted twice cannot hide.
func checkInvariants(f *Fleet) error {
	listed := 0
	for name, n := range f.nodes {
		if n.spec.Name != name {
			return fmt.Errorf("node %s is indexed as %s", n.spec.Name, name)
		}
		var sum Size
		for vmName, vm := range n.vms {
			if f.vms[vmName] != vm {
				return fmt.Errorf("node %s lists vm %s, which the fleet does not hold", name, vmName)
			}
			if vm.Node != name {
				return fmt.Errorf("node %s lists vm %s, which is on node %s", name, vmName, vm.Node)
			}
			sum = sum.add(vm.Reserved)
		}
		listed += len(n.vms)
		if sum != n.reserved {
			return fmt.Errorf("node %s: reserved %s but its VMs sum to %s", name, n.reserved, sum)
		}
		if !n.reserved.fits(n.spec.Capacity) {
			return fmt.Errorf("node %s overcommitted: %s reserved of %s", name, n.reserved, n.spec.Capacity)
		}
		if n.watermark != n.spec.Capacity.fraction(n.spec.Watermark) {
			return fmt.Errorf("node %s: stale watermark %s", name, n.watermark)
		}
	}
	for name, vm := range f.vms {
		n, ok := f.nodes[vm.Node]
		if !ok || n.vms[name] != vm {
			return fmt.Errorf("vm %s is on node %s, which does not list it", name, vm.Node)
		}
	}
	if listed != len(f.vms) {
		return fmt.Errorf("nodes list %d VMs, the fleet holds %d", listed, len(f.vms))
	}
	return nil
}

func requireInvariants(t testing.TB, f *Fleet) {
	t.Helper()
	require.NoError(t, checkInvariants(f))
}

const gib = uint64(1) << 30

// sz is a size in whole vCPUs and GiB, the common case in tests.
func sz(vcpus int64, gibs uint64) Size { return Size{VCPUMilli: vcpus * 1000, MemoryBytes: gibs * gib} }

var unit = sz(1, 1)

// fleetOf builds a fleet of nodes (watermark 0.9) and VMs (unit 1 vCPU/1GiB).
func fleetOf(t testing.TB, nodes map[string]Size, vms ...VM) *Fleet {
	t.Helper()
	f := New()
	for _, name := range sortedKeys(nodes) {
		require.NoError(t, f.UpsertNode(NodeSpec{Name: name, Capacity: nodes[name], Watermark: 0.9}))
	}
	for _, vm := range vms {
		if vm.Unit == (Size{}) {
			vm.Unit = unit
		}
		require.NoError(t, f.UpsertVM(vm))
	}
	requireInvariants(t, f)
	return f
}

func TestCheckInvariantsCatchesCorruption(t *testing.T) {
	corruptions := map[string]func(f *Fleet){
		"reserved drift": func(f *Fleet) { f.nodes["n1"].reserved.MemoryBytes++ },
		"overcommit": func(f *Fleet) {
			f.nodes["n1"].vms["a"].Reserved.VCPUMilli += 100_000
			f.nodes["n1"].reserved.VCPUMilli += 100_000
		},
		"vm on two nodes": func(f *Fleet) { f.nodes["n2"].vms["a"] = f.vms["a"] },
		"vm on no node": func(f *Fleet) {
			delete(f.nodes["n1"].vms, "a")
			f.nodes["n1"].reserved = f.nodes["n1"].reserved.sub(sz(2, 4))
		},
		"unindexed vm":     func(f *Fleet) { delete(f.vms, "a") },
		"stale watermark":  func(f *Fleet) { f.nodes["n1"].spec.Watermark = 0.5 },
		"wrong node field": func(f *Fleet) { f.vms["a"].Node = "n2" },
	}
	for name, corrupt := range corruptions {
		t.Run(name, func(t *testing.T) {
			f := fleetOf(t, map[string]Size{"n1": sz(8, 32), "n2": sz(8, 32)}, VM{Name: "a", Node: "n1", Reserved: sz(2, 4)})
			corrupt(f)
			require.Error(t, checkInvariants(f))
		})
	}
}
