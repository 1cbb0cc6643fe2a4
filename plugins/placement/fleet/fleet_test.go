package fleet

import (
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func requireInvalid(t *testing.T, err error, want string) {
	t.Helper()
	var inv *InvalidError
	require.True(t, errors.As(err, &inv), "want an InvalidError, got %v", err)
	require.Equal(t, want, err.Error())
}

func TestUpsertNodeRefusesMalformedSpecs(t *testing.T) {
	cases := map[string]struct {
		spec NodeSpec
		want string
	}{
		"no name":         {NodeSpec{Capacity: sz(8, 32), Watermark: 0.9}, "name: must not be empty"},
		"no vCPU":         {NodeSpec{Name: "n1", Capacity: Size{MemoryBytes: gib}, Watermark: 0.9}, "capacity.vcpu_milli: must be > 0"},
		"negative vCPU":   {NodeSpec{Name: "n1", Capacity: Size{VCPUMilli: -1, MemoryBytes: gib}, Watermark: 0.9}, "capacity.vcpu_milli: must be > 0"},
		"no memory":       {NodeSpec{Name: "n1", Capacity: Size{VCPUMilli: 1000}, Watermark: 0.9}, "capacity.memory_bytes: must be > 0"},
		"zero watermark":  {NodeSpec{Name: "n1", Capacity: sz(8, 32)}, "watermark: must be in (0, 1], got 0"},
		"watermark > 1":   {NodeSpec{Name: "n1", Capacity: sz(8, 32), Watermark: 1.5}, "watermark: must be in (0, 1], got 1.5"},
		"NaN watermark":   {NodeSpec{Name: "n1", Capacity: sz(8, 32), Watermark: math.NaN()}, "watermark: must be in (0, 1], got NaN"},
		"below watermark": {NodeSpec{Name: "n1", Capacity: sz(8, 32), Watermark: -0.1}, "watermark: must be in (0, 1], got -0.1"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			f := New()
			requireInvalid(t, f.UpsertNode(c.spec), c.want)
			require.Empty(t, f.Snapshot().Nodes)
		})
	}
}

func TestUpsertNodeRefusesCapacityBelowReserved(t *testing.T) {
	cases := map[string]struct {
		capacity Size
		want     string
	}{
		"vCPU":   {sz(4, 64), "node n1 has 6 vCPU reserved: cannot lower capacity to 4 vCPU; migrate VMs first"},
		"memory": {Size{VCPUMilli: 16000, MemoryBytes: 5 * gib / 2}, "node n1 has 6GiB memory reserved: cannot lower capacity to 2.5GiB memory; migrate VMs first"},
		"both":   {Size{VCPUMilli: 5500, MemoryBytes: 4 * gib}, "node n1 has 6 vCPU and 6GiB memory reserved: cannot lower capacity to 5.5 vCPU and 4GiB memory; migrate VMs first"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			f := fleetOf(t, map[string]Size{"n1": sz(16, 64)},
				VM{Name: "a", Node: "n1", Reserved: sz(4, 2)}, VM{Name: "b", Node: "n1", Reserved: sz(2, 4)})
			before := f.Snapshot()
			require.EqualError(t, f.UpsertNode(NodeSpec{Name: "n1", Capacity: c.capacity, Watermark: 0.5}), c.want)
			require.Equal(t, before, f.Snapshot(), "a refused event changes nothing, not even the watermark")
		})
	}
}

func TestUpsertNodeChangesCapacityAndWatermark(t *testing.T) {
	f := fleetOf(t, map[string]Size{"n1": sz(16, 64)}, VM{Name: "a", Node: "n1", Reserved: sz(6, 6)})
	require.NoError(t, f.UpsertNode(NodeSpec{Name: "n1", Capacity: sz(6, 6), Watermark: 0.5}), "lowering capacity exactly to what is reserved is allowed")
	requireInvariants(t, f)
	require.Equal(t, NodeAccount{Spec: NodeSpec{Name: "n1", Capacity: sz(6, 6), Watermark: 0.5}, Reserved: sz(6, 6), VMs: []string{"a"}}, f.Snapshot().Nodes[0])
	require.Equal(t, sz(3, 3), f.nodes["n1"].watermark)
}

func TestRemoveNode(t *testing.T) {
	f := fleetOf(t, map[string]Size{"n1": sz(16, 64), "n2": sz(16, 64)},
		VM{Name: "a", Node: "n1", Reserved: sz(1, 1)}, VM{Name: "b", Node: "n1", Reserved: sz(1, 1)})

	require.EqualError(t, f.RemoveNode("n1"), "node n1 still holds VMs a, b: migrate or remove them first")
	require.Len(t, f.Snapshot().Nodes, 2)

	require.NoError(t, f.RemoveNode("n2"))
	require.NoError(t, f.RemoveNode("n2"), "removing a node twice is harmless")
	require.NoError(t, f.RemoveNode("never-seen"))
	requireInvalid(t, f.RemoveNode(""), "must not be empty")

	require.NoError(t, f.RemoveVM("a"))
	require.NoError(t, f.RemoveVM("b"))
	require.NoError(t, f.RemoveNode("n1"))
	require.Empty(t, f.Snapshot().Nodes)
}

func TestRemoveNodeListsAFewVMs(t *testing.T) {
	f := fleetOf(t, map[string]Size{"n1": sz(16, 64)})
	for _, name := range []string{"g", "f", "e", "d", "c", "b", "a"} {
		require.NoError(t, f.UpsertVM(VM{Name: name, Node: "n1", Reserved: sz(1, 1), Unit: unit}))
	}
	require.EqualError(t, f.RemoveNode("n1"), "node n1 still holds VMs a, b, c, d, e and 2 more: migrate or remove them first")
}

func TestUpsertVMRefusesMalformedVMs(t *testing.T) {
	good := VM{Name: "a", Node: "n1", Reserved: sz(1, 1), Unit: unit}
	cases := map[string]struct {
		edit func(*VM)
		want string
	}{
		"no name":          {func(v *VM) { v.Name = "" }, "vm: must not be empty"},
		"no node":          {func(v *VM) { v.Node = "" }, "node: must not be empty"},
		"negative vCPU":    {func(v *VM) { v.Reserved.VCPUMilli = -1 }, "reserved.vcpu_milli: must be >= 0"},
		"zero vCPU unit":   {func(v *VM) { v.Unit.VCPUMilli = 0 }, "unit.vcpu_milli: must be > 0"},
		"zero memory unit": {func(v *VM) { v.Unit.MemoryBytes = 0 }, "unit.memory_bytes: must be > 0"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			f := fleetOf(t, map[string]Size{"n1": sz(16, 64)})
			vm := good
			c.edit(&vm)
			requireInvalid(t, f.UpsertVM(vm), c.want)
			require.Empty(t, f.Snapshot().VMs)
		})
	}
}

func TestUpsertVM(t *testing.T) {
	nodes := map[string]Size{"n1": sz(8, 16), "n2": sz(4, 8)}

	t.Run("unknown node", func(t *testing.T) {
		f := fleetOf(t, nodes)
		require.EqualError(t, f.UpsertVM(VM{Name: "a", Node: "n9", Reserved: sz(1, 1), Unit: unit}), "vm a: unknown node n9")
		require.Empty(t, f.Snapshot().VMs)
	})
	t.Run("new VM that does not fit", func(t *testing.T) {
		f := fleetOf(t, nodes, VM{Name: "a", Node: "n1", Reserved: sz(6, 2)})
		require.EqualError(t, f.UpsertVM(VM{Name: "b", Node: "n1", Reserved: sz(3, 1), Unit: unit}), "vm b (3 vCPU/1GiB) does not fit on node n1: room for 2 vCPU/14GiB")
		requireInvariants(t, f)
		require.Len(t, f.Snapshot().VMs, 1)
	})
	t.Run("increase that fits, then one that does not", func(t *testing.T) {
		f := fleetOf(t, nodes, VM{Name: "a", Node: "n1", Reserved: sz(2, 2)}, VM{Name: "b", Node: "n1", Reserved: sz(2, 2)})
		require.NoError(t, f.UpsertVM(VM{Name: "a", Node: "n1", Reserved: sz(6, 14), Unit: unit}))
		require.EqualError(t, f.UpsertVM(VM{Name: "a", Node: "n1", Reserved: sz(7, 1), Unit: unit}), "vm a (7 vCPU/1GiB) does not fit on node n1: room for 6 vCPU/14GiB")
		requireInvariants(t, f)
		require.Equal(t, sz(6, 14), f.vms["a"].Reserved, "a refused event is refused whole, the memory decrease included")
	})
	t.Run("decrease applies at once", func(t *testing.T) {
		f := fleetOf(t, nodes, VM{Name: "a", Node: "n1", Reserved: sz(8, 16)})
		require.NoError(t, f.UpsertVM(VM{Name: "a", Node: "n1", Reserved: sz(1, 1), Unit: sz(2, 2), DirtyBytesPerSecond: 7}))
		requireInvariants(t, f)
		require.Equal(t, VM{Name: "a", Node: "n1", Reserved: sz(1, 1), Unit: sz(2, 2), DirtyBytesPerSecond: 7}, *f.vms["a"])
		require.Equal(t, sz(1, 1), f.nodes["n1"].reserved)
	})
	t.Run("move that fits frees the source", func(t *testing.T) {
		f := fleetOf(t, nodes, VM{Name: "a", Node: "n1", Reserved: sz(4, 8)})
		require.NoError(t, f.UpsertVM(VM{Name: "a", Node: "n2", Reserved: sz(4, 8), Unit: unit}))
		requireInvariants(t, f)
		require.Equal(t, Size{}, f.nodes["n1"].reserved)
		require.Equal(t, sz(4, 8), f.nodes["n2"].reserved)
	})
	t.Run("move that does not fit leaves the VM where it is", func(t *testing.T) {
		f := fleetOf(t, nodes, VM{Name: "a", Node: "n1", Reserved: sz(4, 8)}, VM{Name: "b", Node: "n2", Reserved: sz(1, 1)})
		require.EqualError(t, f.UpsertVM(VM{Name: "a", Node: "n2", Reserved: sz(4, 8), Unit: unit}), "vm a (4 vCPU/8GiB) does not fit on node n2: room for 3 vCPU/7GiB")
		requireInvariants(t, f)
		require.Equal(t, "n1", f.vms["a"].Node)
		require.Equal(t, sz(4, 8), f.nodes["n1"].reserved)
	})
}

func TestRemoveVMFrees(t *testing.T) {
	f := fleetOf(t, map[string]Size{"n1": sz(8, 16)}, VM{Name: "a", Node: "n1", Reserved: sz(8, 16)})
	require.NoError(t, f.RemoveVM("a"))
	require.NoError(t, f.RemoveVM("a"), "removing a VM twice is harmless")
	requireInvariants(t, f)
	require.NoError(t, f.UpsertVM(VM{Name: "b", Node: "n1", Reserved: sz(8, 16), Unit: unit}), "the whole node is free again")
	requireInvalid(t, f.RemoveVM(""), "must not be empty")
}

func TestApplyingEventsTwiceLeavesTheSameState(t *testing.T) {
	events := func(f *Fleet) {
		_ = f.UpsertNode(NodeSpec{Name: "n1", Capacity: sz(8, 16), Watermark: 0.9})
		_ = f.UpsertNode(NodeSpec{Name: "n2", Capacity: sz(8, 16), Watermark: 0.8})
		_ = f.UpsertVM(VM{Name: "a", Node: "n1", Reserved: sz(4, 4), Unit: unit})
		_ = f.UpsertVM(VM{Name: "b", Node: "n1", Reserved: sz(4, 4), Unit: unit})
		_ = f.UpsertVM(VM{Name: "c", Node: "n1", Reserved: sz(1, 1), Unit: unit}) // refused: n1 is full
		_ = f.UpsertVM(VM{Name: "a", Node: "n2", Reserved: sz(4, 4), Unit: unit})
		_ = f.UpsertVM(VM{Name: "b", Node: "n1", Reserved: sz(2, 2), Unit: unit})
		_ = f.RemoveVM("b")
		_ = f.UpsertNode(NodeSpec{Name: "n3", Capacity: sz(1, 1), Watermark: 1})
		_ = f.RemoveNode("n3")
	}
	f := New()
	events(f)
	once := f.Snapshot()
	events(f)
	requireInvariants(t, f)
	require.Equal(t, once, f.Snapshot())
	require.Equal(t, []VM{{Name: "a", Node: "n2", Reserved: sz(4, 4), Unit: unit}}, once.VMs)
}

func TestSnapshotIsSortedAndReplays(t *testing.T) {
	f := fleetOf(t, map[string]Size{"n2": sz(8, 16), "n1": sz(8, 16)},
		VM{Name: "c", Node: "n1", Reserved: sz(1, 1)}, VM{Name: "a", Node: "n1", Reserved: sz(1, 2), DirtyBytesPerSecond: 5}, VM{Name: "b", Node: "n2", Reserved: sz(3, 1)})
	s := f.Snapshot()
	require.Equal(t, []NodeAccount{
		{Spec: NodeSpec{Name: "n1", Capacity: sz(8, 16), Watermark: 0.9}, Reserved: sz(2, 3), VMs: []string{"a", "c"}},
		{Spec: NodeSpec{Name: "n2", Capacity: sz(8, 16), Watermark: 0.9}, Reserved: sz(3, 1), VMs: []string{"b"}},
	}, s.Nodes)
	require.Equal(t, []string{"a", "b", "c"}, []string{s.VMs[0].Name, s.VMs[1].Name, s.VMs[2].Name})
	require.Equal(t, s, replay(t, s).Snapshot())
}

// replay rebuilds a fleet from a snapshot as the host does after a plugin
// restart: every node, then every VM.
func replay(t testing.TB, s Snapshot) *Fleet {
	t.Helper()
	f := New()
	for _, n := range s.Nodes {
		require.NoError(t, f.UpsertNode(n.Spec))
	}
	for _, vm := range s.VMs {
		require.NoError(t, f.UpsertVM(vm))
	}
	return f
}

func TestFormatting(t *testing.T) {
	require.Equal(t, "0.25 vCPU/512MiB", Size{VCPUMilli: 250, MemoryBytes: 512 << 20}.String())
	require.Equal(t, "1 vCPU/1.5GiB", Size{VCPUMilli: 1000, MemoryBytes: 3 * gib / 2}.String())
	require.Equal(t, "0 vCPU/0B", Size{}.String())
	require.Equal(t, "1023B", formatBytes(1023))
	require.Equal(t, "57.6GiB", formatBytes(sz(64, 64).fraction(0.9).MemoryBytes))
	require.Equal(t, "15EiB", formatBytes(15<<60), "the largest unit")
}

func TestFractionNeverExceedsTheWhole(t *testing.T) {
	require.Equal(t, Size{VCPUMilli: 7, MemoryBytes: 7}, Size{VCPUMilli: 8, MemoryBytes: 8}.fraction(0.9375), "floors, never rounds up")
	whole := Size{VCPUMilli: math.MaxInt64, MemoryBytes: math.MaxUint64}
	require.Equal(t, whole, whole.fraction(1), "float rounding of a huge capacity must not wrap")
	require.Equal(t, Size{}, whole.fraction(-0.5))
}
