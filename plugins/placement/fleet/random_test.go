package fleet

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var seed = flag.Uint64("seed", 20261127, "seed of the randomised fleet tests")

// world draws random operations over a small pool of names, so that
// operations keep hitting nodes and VMs that exist.
type world struct {
	rng *rand.Rand
}

func (w world) nodeName() string { return fmt.Sprintf("n%02d", w.rng.IntN(16)) }
func (w world) vmName() string   { return fmt.Sprintf("vm%03d", w.rng.IntN(160)) }

func (w world) nodeSpec(name string) NodeSpec {
	return NodeSpec{
		Name:      name,
		Capacity:  Size{VCPUMilli: int64(4+w.rng.IntN(29)) * 1000, MemoryBytes: uint64(8+w.rng.IntN(121)) * gib / 2},
		Watermark: []float64{0.5, 0.7, 0.8, 0.9, 1}[w.rng.IntN(5)],
	}
}

func (w world) size() Size {
	return Size{VCPUMilli: int64(w.rng.IntN(33)) * 250, MemoryBytes: uint64(1+w.rng.IntN(64)) * gib / 4}
}

func (w world) unit() Size {
	return []Size{{VCPUMilli: 250, MemoryBytes: gib / 4}, {VCPUMilli: 1000, MemoryBytes: gib}, {VCPUMilli: 500, MemoryBytes: 3 * gib / 2}}[w.rng.IntN(3)]
}

func (w world) policy() Policy {
	return Policy{
		Strategy:             []Strategy{Spread, Pack}[w.rng.IntN(2)],
		DirtyRateWeight:      time.Duration(w.rng.IntN(20)) * time.Second,
		MaxMigrationsPerNode: 1 + w.rng.IntN(4),
		TargetHeadroom:       []float64{0, 0, 0.05, 0.2}[w.rng.IntN(4)],
	}
}

// TestRandomOperationsKeepTheInvariants runs 10^5 random operations, each
// checked against what the rules say it should do, and checks the
// invariants after every one. Rerun a failure with -seed.
func TestRandomOperationsKeepTheInvariants(t *testing.T) {
	const steps = 100_000
	w := world{rng: rand.New(rand.NewPCG(*seed, 1))}
	f := New()
	var step int
	var op string
	defer func() {
		if t.Failed() {
			t.Logf("failed at step %d (%s) with -seed %d", step, op, *seed)
		}
	}()

	counts := map[string]int{}
	for step = range steps {
		switch r := w.rng.IntN(100); {
		case r < 6:
			op = "node upsert"
			spec := w.nodeSpec(w.nodeName())
			n, exists := f.nodes[spec.Name]
			err := f.UpsertNode(spec)
			require.Equal(t, exists && !n.reserved.fits(spec.Capacity), err != nil, "%v", err)
		case r < 9:
			op = "node remove"
			name := w.nodeName()
			n, exists := f.nodes[name]
			err := f.RemoveNode(name)
			require.Equal(t, exists && len(n.vms) > 0, err != nil, "%v", err)
			_, still := f.nodes[name]
			require.Equal(t, err != nil, still)
		case r < 24:
			op = "vm create or update"
			vm := VM{Name: w.vmName(), Node: w.nodeName(), Reserved: w.size(), Unit: w.unit(), DirtyBytesPerSecond: uint64(w.rng.IntN(4)) << 26}
			requireUpsertFollowsTheRules(t, f, vm)
		case r < 34:
			op = "vm place"
			vm, size, strategy := w.vmName(), w.size(), w.policy().Strategy
			_, existed := f.vms[vm]
			p, err := f.Place(vm, size, w.unit(), strategy)
			require.NoError(t, err)
			if p.Node != "" {
				require.Equal(t, p.Node, f.vms[vm].Node)
				require.True(t, existed || f.vms[vm].Reserved == size)
			} else {
				require.False(t, existed)
				for _, n := range f.nodes {
					require.False(t, size.fits(n.free()), "fits on %s, yet placed nowhere", n.spec.Name)
				}
			}
		case r < 62:
			op = "grow"
			asks := make([]Ask, 1+w.rng.IntN(5))
			for i := range asks {
				asks[i] = Ask{VM: w.vmName(), Want: w.size().add(w.size())}
			}
			requireGrowFollowsTheRules(t, f, asks)
		case r < 76:
			op = "shrink"
			if vm, ok := f.vms[w.vmName()]; ok {
				smaller := *vm
				smaller.Reserved.VCPUMilli -= w.rng.Int64N(vm.Reserved.VCPUMilli + 1)
				smaller.Reserved.MemoryBytes -= w.rng.Uint64N(vm.Reserved.MemoryBytes + 1)
				require.NoError(t, f.UpsertVM(smaller), "a decrease applies at once")
			}
		case r < 82:
			op = "vm move"
			if vm, ok := f.vms[w.vmName()]; ok {
				moved := *vm
				moved.Node = w.nodeName()
				requireUpsertFollowsTheRules(t, f, moved)
			}
		case r < 90:
			op = "vm remove"
			name := w.vmName()
			require.NoError(t, f.RemoveVM(name))
			require.NotContains(t, f.vms, name)
		case r < 97:
			op = "migration plan executed"
			requireExecutes(t, f, f.PlanMigrations(w.policy()))
		default:
			op = "plugin restart"
			s := f.Snapshot()
			f = replay(t, s)
			require.Equal(t, s, f.Snapshot())
		}
		counts[op]++
		if err := checkInvariants(f); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d steps: %v; ended with %d nodes, %d VMs", steps, counts, len(f.nodes), len(f.vms))
	require.NotEmpty(t, f.vms, "the run should end with a populated fleet, or it tested little")
}

func requireUpsertFollowsTheRules(t *testing.T, f *Fleet, vm VM) {
	t.Helper()
	old, existed := f.vms[vm.Name]
	var wantOK bool
	if n, ok := f.nodes[vm.Node]; ok {
		after := n.reserved
		if existed && old.Node == vm.Node {
			after = after.sub(old.Reserved)
		}
		wantOK = vm.Reserved.fits(n.spec.Capacity.sub(after))
	}
	var before VM
	if existed {
		before = *old
	}
	err := f.UpsertVM(vm)
	require.Equal(t, wantOK, err == nil, "%v", err)
	if err == nil {
		require.Equal(t, vm, *f.vms[vm.Name])
	} else if existed {
		require.Equal(t, before, *f.vms[vm.Name], "a refused event changes nothing")
	} else {
		require.NotContains(t, f.vms, vm.Name)
	}
}

func requireGrowFollowsTheRules(t *testing.T, f *Fleet, asks []Ask) {
	t.Helper()
	for _, a := range asks {
		vm, ok := f.vms[a.VM]
		var reserved, unit, free Size
		if ok {
			reserved, unit, free = vm.Reserved, vm.Unit, f.nodes[vm.Node].free()
		}
		grants, err := f.Grow([]Ask{a})
		require.NoError(t, err)
		g := grants[0]
		if !ok {
			require.Equal(t, Size{}, g.Granted)
			continue
		}
		require.Equal(t, g.Granted, f.vms[a.VM].Reserved)
		requireDimensionGrant(t, reserved.VCPUMilli, a.Want.VCPUMilli, g.Granted.VCPUMilli, free.VCPUMilli, unit.VCPUMilli)
		requireDimensionGrant(t, reserved.MemoryBytes, a.Want.MemoryBytes, g.Granted.MemoryBytes, free.MemoryBytes, unit.MemoryBytes)
		require.Equal(t, g.Granted.VCPUMilli < a.Want.VCPUMilli || g.Granted.MemoryBytes < a.Want.MemoryBytes, g.Partial)
	}
}

// requireDimensionGrant states the grant rule independently of its
// implementation: untouched at or above want; otherwise want when it fits,
// else whole units, and no further whole unit would have fitted.
func requireDimensionGrant[T int64 | uint64](t *testing.T, reserved, want, granted, free, unit T) {
	t.Helper()
	switch {
	case want <= reserved:
		require.Equal(t, reserved, granted)
	case want-reserved <= free:
		require.Equal(t, want, granted)
	default:
		require.Less(t, granted, want)
		require.GreaterOrEqual(t, granted, reserved)
		require.Zero(t, (granted-reserved)%unit)
		require.Greater(t, granted-reserved+unit, free, "another unit would have fitted")
	}
}
