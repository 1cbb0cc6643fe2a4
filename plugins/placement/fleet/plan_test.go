package fleet

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var defaultPolicy = Policy{Strategy: Spread, DirtyRateWeight: 10 * time.Second, MaxMigrationsPerNode: 4}

// plan plans, checks that planning changed nothing, executes the plan the
// way the host does (each move reported as the VM on its new node) and
// checks that every move fitted and that every node without a shortfall
// ends at or under its watermark.
func plan(t *testing.T, f *Fleet, p Policy) Plan {
	t.Helper()
	before := f.Snapshot()
	got := f.PlanMigrations(p)
	require.Equal(t, before, f.Snapshot(), "planning changes nothing")
	require.Equal(t, got, f.PlanMigrations(p), "planning is deterministic")
	requireExecutes(t, f, got)
	return got
}

func requireExecutes(t testing.TB, f *Fleet, p Plan) {
	t.Helper()
	moved := map[string]bool{}
	for _, m := range p.Migrations {
		require.False(t, moved[m.VM], "vm %s moves twice", m.VM)
		moved[m.VM] = true
		vm := *f.vms[m.VM]
		require.Equal(t, m.From, vm.Node)
		vm.Node = m.To
		require.NoError(t, f.UpsertVM(vm))
		require.True(t, f.nodes[m.To].reserved.fits(f.nodes[m.To].watermark), "target %s ends above its watermark", m.To)
	}
	requireInvariants(t, f)
	short := map[string]bool{}
	for _, s := range p.Shortfalls {
		short[s.Node] = true
	}
	for name, n := range f.nodes {
		require.True(t, short[name] || n.reserved.fits(n.watermark), "node %s still above its watermark with no shortfall reported", name)
	}
}

func moves(p Plan) []string {
	var out []string
	for _, m := range p.Migrations {
		out = append(out, m.VM+": "+m.From+" -> "+m.To)
	}
	return out
}

func TestPlanNothingWhenEveryNodeIsUnderItsWatermark(t *testing.T) {
	f := fleetOf(t, map[string]Size{"n1": sz(10, 10), "n2": sz(10, 10)}, VM{Name: "a", Node: "n1", Reserved: sz(9, 9)})
	require.Equal(t, Plan{}, plan(t, f, defaultPolicy))
}

func TestPlanMovesTheCheapestVM(t *testing.T) {
	// hot is 1 vCPU and 1GiB above its 9 vCPU/9GiB watermark: either 2/2 VM
	// is enough; busy dirties 1GiB/s, so it costs 2GiB + 10s × 1GiB/s.
	build := func() *Fleet {
		return fleetOf(t, map[string]Size{"hot": sz(10, 10), "cool": sz(16, 16)},
			VM{Name: "busy", Node: "hot", Reserved: sz(2, 2), DirtyBytesPerSecond: gib},
			VM{Name: "calm", Node: "hot", Reserved: sz(2, 2)},
			VM{Name: "large", Node: "hot", Reserved: sz(6, 6)})
	}
	got := plan(t, build(), defaultPolicy)
	require.Equal(t, Plan{Migrations: []Migration{{
		VM: "calm", From: "hot", To: "cool",
		Reason: "node hot is above its watermark (10 vCPU/10GiB reserved, watermark 9 vCPU/9GiB); vm calm (2 vCPU/2GiB) costs 2GiB to move",
	}}}, got)

	unweighted := defaultPolicy
	unweighted.DirtyRateWeight = 0
	require.Equal(t, []string{"busy: hot -> cool"}, moves(plan(t, build(), unweighted)), "without the dirty rate they cost the same: the name decides")
}

func TestPlanPrunesNeedlessMoves(t *testing.T) {
	// hot must shed 2 vCPU/2GiB. Cheapest first takes small (1/1), then big
	// (3/3); big alone is enough, so small stays.
	f := fleetOf(t, map[string]Size{"hot": sz(20, 20), "cool": sz(32, 32)},
		VM{Name: "small", Node: "hot", Reserved: sz(1, 1)},
		VM{Name: "big", Node: "hot", Reserved: sz(3, 3)},
		VM{Name: "filler", Node: "hot", Reserved: sz(16, 16)})
	require.Equal(t, []string{"big: hot -> cool"}, moves(plan(t, f, defaultPolicy)))
}

func TestPlanOnlyMovesVMsThatRelieveTheNode(t *testing.T) {
	// hot is above its watermark in vCPU only; memory-only is cheapest but
	// holds no vCPU.
	f := fleetOf(t, map[string]Size{"hot": sz(10, 100), "cool": sz(16, 16)},
		VM{Name: "memory-only", Node: "hot", Reserved: Size{MemoryBytes: gib}},
		VM{Name: "cpu", Node: "hot", Reserved: sz(2, 2)},
		VM{Name: "rest", Node: "hot", Reserved: sz(8, 8)})
	require.Equal(t, []string{"cpu: hot -> cool"}, moves(plan(t, f, defaultPolicy)))
}

func TestPlanAccountsForEarlierMoves(t *testing.T) {
	// hot (watermark 5/5) must shed a and b; each target can hold one of
	// them under its own watermark.
	f := New()
	for _, name := range []string{"hot", "t1", "t2"} {
		require.NoError(t, f.UpsertNode(NodeSpec{Name: name, Capacity: sz(10, 10), Watermark: 0.5}))
	}
	for _, vm := range []VM{{Name: "a", Reserved: sz(3, 3)}, {Name: "b", Reserved: sz(3, 3)}, {Name: "c", Reserved: sz(4, 4)}} {
		vm.Node, vm.Unit = "hot", unit
		require.NoError(t, f.UpsertVM(vm))
	}
	require.Equal(t, []string{"a: hot -> t1", "b: hot -> t2"}, moves(plan(t, f, defaultPolicy)))
}

func TestPlanTargetsFollowTheStrategyAndHeadroom(t *testing.T) {
	// Moving 2/2 off hot: roomy ends with 0.8 headroom, snug with 0.1
	// (under its 0.9 watermark, but not 0.3 below it).
	build := func() *Fleet {
		return fleetOf(t, map[string]Size{"hot": sz(10, 10), "roomy": sz(10, 10), "snug": sz(10, 10)},
			VM{Name: "a", Node: "hot", Reserved: sz(2, 2)}, VM{Name: "rest", Node: "hot", Reserved: sz(8, 8)},
			VM{Name: "s", Node: "snug", Reserved: sz(6, 6)})
	}
	cases := map[string]struct {
		strategy Strategy
		headroom float64
		want     string
	}{
		"spread takes the roomiest":          {Spread, 0, "a: hot -> roomy"},
		"pack takes the tightest":            {Pack, 0, "a: hot -> snug"},
		"pack keeps the headroom it is told": {Pack, 0.3, "a: hot -> roomy"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p := defaultPolicy
			p.Strategy, p.TargetHeadroom = c.strategy, c.headroom
			require.Equal(t, []string{c.want}, moves(plan(t, build(), p)))
		})
	}
}

func TestPlanReportsWhatItCannotFix(t *testing.T) {
	t.Run("no room anywhere", func(t *testing.T) {
		f := fleetOf(t, map[string]Size{"hot": sz(10, 10), "full": sz(10, 10)},
			VM{Name: "a", Node: "hot", Reserved: sz(10, 10)}, VM{Name: "b", Node: "full", Reserved: sz(8, 8)})
		require.Equal(t, Plan{Shortfalls: []Shortfall{{
			Node:   "hot",
			Reason: "stays above its watermark (10 vCPU/10GiB reserved after 0 planned moves, watermark 9 vCPU/9GiB): no other node has room under its watermark for the VMs that would relieve it",
		}}}, plan(t, f, defaultPolicy))
	})
	t.Run("migration limit", func(t *testing.T) {
		// hot must shed 4/4 to reach its 16/16 watermark: two of its 2/2
		// VMs, but may give only one.
		f := fleetOf(t, map[string]Size{"hot": sz(20, 20), "cool": sz(32, 32)},
			VM{Name: "a", Node: "hot", Reserved: sz(2, 2)}, VM{Name: "b", Node: "hot", Reserved: sz(2, 2)}, VM{Name: "rest", Node: "hot", Reserved: sz(16, 16)})
		require.NoError(t, f.UpsertNode(NodeSpec{Name: "hot", Capacity: sz(20, 20), Watermark: 0.8}))
		p := defaultPolicy
		p.MaxMigrationsPerNode = 1
		got := plan(t, f, p)
		require.Equal(t, []string{"a: hot -> cool"}, moves(got), "the moves that help are kept")
		require.Equal(t, []Shortfall{{
			Node:   "hot",
			Reason: "stays above its watermark (18 vCPU/18GiB reserved after 1 planned moves, watermark 16 vCPU/16GiB): the limit of migrations per node (1) is reached",
		}}, got.Shortfalls)
	})
}

func TestPlanLimitsMigrationsPerTarget(t *testing.T) {
	// Each hot node sheds one 2/2 VM; cool (watermark 1) stays the roomiest
	// target after taking one, but with a limit of 1 may receive only one.
	build := func() *Fleet {
		f := fleetOf(t, map[string]Size{"hot1": sz(10, 10), "hot2": sz(10, 10), "cool": sz(100, 100), "spare": sz(10, 10)},
			VM{Name: "a", Node: "hot1", Reserved: sz(2, 2)}, VM{Name: "rest1", Node: "hot1", Reserved: sz(8, 8)},
			VM{Name: "b", Node: "hot2", Reserved: sz(2, 2)}, VM{Name: "rest2", Node: "hot2", Reserved: sz(8, 8)})
		require.NoError(t, f.UpsertNode(NodeSpec{Name: "cool", Capacity: sz(100, 100), Watermark: 1}))
		return f
	}
	p := defaultPolicy
	p.MaxMigrationsPerNode = 1
	require.Equal(t, []string{"a: hot1 -> cool", "b: hot2 -> spare"}, moves(plan(t, build(), p)))
	p.MaxMigrationsPerNode = 2
	require.Equal(t, []string{"a: hot1 -> cool", "b: hot2 -> cool"}, moves(plan(t, build(), p)))
}

func TestPlanServesTheMostOverloadedNodeFirst(t *testing.T) {
	// The only target has room for one 2/2 VM. b-severe is 3/3 above its
	// 9/9 watermark (after shedding 2/2 it still is, but it gets the room),
	// a-mild only 1/1.
	f := fleetOf(t, map[string]Size{"a-mild": sz(10, 10), "b-severe": sz(12, 12), "target": sz(10, 10)},
		VM{Name: "m", Node: "a-mild", Reserved: sz(2, 2)}, VM{Name: "m-rest", Node: "a-mild", Reserved: sz(8, 8)},
		VM{Name: "s", Node: "b-severe", Reserved: sz(2, 2)}, VM{Name: "s-rest", Node: "b-severe", Reserved: sz(10, 10)},
		VM{Name: "t", Node: "target", Reserved: sz(7, 7)})
	got := plan(t, f, defaultPolicy)
	require.Equal(t, []string{"s: b-severe -> target"}, moves(got))
	require.Len(t, got.Shortfalls, 1)
	require.Equal(t, "a-mild", got.Shortfalls[0].Node)
}

func TestPlanDoesNotDependOnInsertionOrder(t *testing.T) {
	nodes := []NodeSpec{{Name: "hot", Capacity: sz(20, 20), Watermark: 0.5}, {Name: "t1", Capacity: sz(20, 20), Watermark: 0.9}, {Name: "t2", Capacity: sz(20, 20), Watermark: 0.9}}
	vms := []VM{{Name: "a", Reserved: sz(3, 3)}, {Name: "b", Reserved: sz(3, 3)}, {Name: "c", Reserved: sz(3, 3)}, {Name: "d", Reserved: sz(3, 3)}, {Name: "e", Reserved: sz(3, 3)}}
	build := func(reverse bool) *Fleet {
		f := New()
		for i := range nodes {
			if reverse {
				i = len(nodes) - 1 - i
			}
			require.NoError(t, f.UpsertNode(nodes[i]))
		}
		for i := range vms {
			if reverse {
				i = len(vms) - 1 - i
			}
			vm := vms[i]
			vm.Node, vm.Unit = "hot", unit
			require.NoError(t, f.UpsertVM(vm))
		}
		return f
	}
	forward := plan(t, build(false), defaultPolicy)
	require.Equal(t, []string{"a: hot -> t1", "b: hot -> t2"}, moves(forward), "hot sheds 6/6 of 15/15 to reach 10/10; t1 and t2 tie")
	require.Equal(t, forward, plan(t, build(true), defaultPolicy))
}
