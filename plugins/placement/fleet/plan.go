package fleet

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Policy tunes PlanMigrations.
type Policy struct {
	// Strategy orders the targets a VM may move to, as it ranks nodes in
	// Place.
	Strategy Strategy
	// DirtyRateWeight prices a VM's dirty rate into the cost of moving it:
	// cost = reserved memory + dirty bytes per second × this. Pages dirtied
	// during a live migration are sent again, so a busy VM moves slower.
	DirtyRateWeight time.Duration
	// MaxMigrationsPerNode bounds the migrations one plan gives a node, as
	// source or target: each one loads the network and memory bandwidth of
	// both ends.
	MaxMigrationsPerNode int
	// TargetHeadroom is the fraction of capacity a target must keep free
	// below its own watermark once the VM has arrived.
	TargetHeadroom float64
}

// Migration moves VM from one node to another.
type Migration struct {
	VM, From, To string
	Reason       string
}

// Shortfall is a node the plan cannot bring under its watermark; the plan
// still holds the moves that help it.
type Shortfall struct {
	Node   string
	Reason string
}

// Plan is what PlanMigrations proposes; the host executes each migration
// and then reports the VM on its new node through UpsertVM.
type Plan struct {
	Migrations []Migration
	Shortfalls []Shortfall
}

// PlanMigrations proposes migrations that bring every node above its
// watermark (in either dimension) back under it. It changes nothing.
//
// Overloaded nodes are handled most overloaded first (by the share of
// capacity they are over), then by name. For each, its VMs are taken
// cheapest to move first (see Policy.DirtyRateWeight), skipping those that
// would not relieve an overloaded dimension or that fit on no target, until
// the node is under its watermark. A pruning pass then drops, most expensive
// first, every chosen VM the node can keep and still be under, so that no
// needless VM moves.
//
// A target is a node that is not itself overloaded and where the VM fits
// under the target's watermark minus Policy.TargetHeadroom, counting the
// moves planned before it; never one that would overcommit. Targets are
// tried in the strategy's order of their remaining room (spread: most
// first; pack: least first), then by name, and the first that fits wins. A
// node drained in a plan receives nothing in it.
//
// Cost: sorting nodes and each node's VMs, plus a binary-search insert per
// planned move; a VM too large for every target is skipped without a scan.
func (f *Fleet) PlanMigrations(p Policy) Plan {
	var sources, targets []*planNode
	for _, n := range f.nodes {
		pn := &planNode{node: n, reserved: n.reserved}
		if !n.reserved.fits(n.watermark) {
			sources = append(sources, pn)
			continue
		}
		pn.limit = n.spec.Capacity.fraction(n.spec.Watermark - p.TargetHeadroom)
		if n.reserved.fits(pn.limit) {
			targets = append(targets, pn)
		}
	}
	if len(sources) == 0 {
		return Plan{}
	}
	slices.SortFunc(sources, func(a, b *planNode) int {
		return cmp.Or(cmp.Compare(b.overload(), a.overload()), strings.Compare(a.node.spec.Name, b.node.spec.Name))
	})

	pl := planner{policy: p, targets: newTargetIndex(targets, p)}
	var plan Plan
	for _, src := range sources {
		before := src.reserved
		moves, under := pl.drain(src)
		for _, m := range moves {
			plan.Migrations = append(plan.Migrations, Migration{
				VM:   m.vm.Name,
				From: src.node.spec.Name,
				To:   m.to.node.spec.Name,
				Reason: fmt.Sprintf("node %s is above its watermark (%s reserved, watermark %s); vm %s (%s) costs %s to move",
					src.node.spec.Name, before, src.node.watermark, m.vm.Name, m.vm.Reserved, formatBytes(uint64(m.cost))),
			})
		}
		if !under {
			plan.Shortfalls = append(plan.Shortfalls, Shortfall{Node: src.node.spec.Name, Reason: pl.shortfall(src)})
		}
	}
	return plan
}

// planNode is a node as a plan in progress sees it.
type planNode struct {
	node *node
	// reserved is the node's reservation once the moves planned so far
	// have run.
	reserved Size
	moves    int
	// limit is the most a target may hold: (watermark − headroom) × capacity.
	limit Size
	// room is the headroom left under limit; it orders the target index.
	room float64
}

func (p *planNode) under() bool { return p.reserved.fits(p.node.watermark) }

// overload is the largest share of capacity by which the node is above its
// watermark.
func (p *planNode) overload() float64 {
	c, w := p.node.spec.Capacity, p.node.watermark
	return max(
		(float64(p.reserved.VCPUMilli)-float64(w.VCPUMilli))/float64(c.VCPUMilli),
		(float64(p.reserved.MemoryBytes)-float64(w.MemoryBytes))/float64(c.MemoryBytes),
	)
}

// relievedBy reports whether moving s away lowers a dimension in which the
// node is above its watermark.
func (p *planNode) relievedBy(s Size) bool {
	w := p.node.watermark
	return (p.reserved.VCPUMilli > w.VCPUMilli && s.VCPUMilli > 0) ||
		(p.reserved.MemoryBytes > w.MemoryBytes && s.MemoryBytes > 0)
}

type move struct {
	vm   *VM
	to   *planNode
	cost float64
}

type planner struct {
	policy  Policy
	targets targetIndex
}

// drain chooses the moves for one overloaded node and reports whether they
// bring it under its watermark.
func (pl *planner) drain(src *planNode) ([]move, bool) {
	candidates := make([]move, 0, len(src.node.vms))
	for _, vm := range src.node.vms {
		cost := float64(vm.Reserved.MemoryBytes) + float64(vm.DirtyBytesPerSecond)*pl.policy.DirtyRateWeight.Seconds()
		candidates = append(candidates, move{vm: vm, cost: cost})
	}
	slices.SortFunc(candidates, func(a, b move) int {
		return cmp.Or(cmp.Compare(a.cost, b.cost), strings.Compare(a.vm.Name, b.vm.Name))
	})

	var moves []move
	for _, m := range candidates {
		if src.under() || src.moves >= pl.policy.MaxMigrationsPerNode {
			break
		}
		if !src.relievedBy(m.vm.Reserved) {
			continue
		}
		if m.to = pl.targets.firstFit(m.vm.Reserved); m.to == nil {
			continue
		}
		pl.shift(src, m, 1)
		moves = append(moves, m)
	}
	if !src.under() {
		return moves, false
	}
	for i := len(moves) - 1; i >= 0; i-- {
		if src.reserved.add(moves[i].vm.Reserved).fits(src.node.watermark) {
			pl.shift(src, moves[i], -1)
			moves = slices.Delete(moves, i, i+1)
		}
	}
	return moves, true
}

// shift plans m (dir 1) or takes it back (dir -1).
func (pl *planner) shift(src *planNode, m move, dir int) {
	s := m.vm.Reserved
	pl.targets.remove(m.to)
	if dir > 0 {
		src.reserved, m.to.reserved = src.reserved.sub(s), m.to.reserved.add(s)
	} else {
		src.reserved, m.to.reserved = src.reserved.add(s), m.to.reserved.sub(s)
	}
	src.moves += dir
	m.to.moves += dir
	pl.targets.insert(m.to)
}

func (pl *planner) shortfall(src *planNode) string {
	why := "no other node has room under its watermark for the VMs that would relieve it"
	if src.moves >= pl.policy.MaxMigrationsPerNode {
		why = fmt.Sprintf("the limit of migrations per node (%d) is reached", pl.policy.MaxMigrationsPerNode)
	}
	return fmt.Sprintf("stays above its watermark (%s reserved after %d planned moves, watermark %s): %s",
		src.reserved, src.moves, src.node.watermark, why)
}

// targetIndex keeps the nodes that may still receive VMs in the order they
// are tried. A node leaves it when it reaches the migration limit.
type targetIndex struct {
	order    []*planNode
	pack     bool
	maxMoves int
	// maxRoom bounds what any target can take in each dimension, so a VM
	// too large for all of them is skipped without a scan. It is raised at
	// every insertion and never lowered, so it stays a bound.
	maxRoom Size
}

func newTargetIndex(nodes []*planNode, p Policy) targetIndex {
	t := targetIndex{pack: p.Strategy == Pack, maxMoves: p.MaxMigrationsPerNode}
	if t.maxMoves <= 0 {
		return t
	}
	for _, n := range nodes {
		t.measure(n)
	}
	t.order = nodes
	slices.SortFunc(t.order, t.compare)
	return t
}

func (t *targetIndex) compare(a, b *planNode) int {
	byRoom := cmp.Compare(b.room, a.room)
	if t.pack {
		byRoom = -byRoom
	}
	return cmp.Or(byRoom, strings.Compare(a.node.spec.Name, b.node.spec.Name))
}

func (t *targetIndex) measure(p *planNode) {
	free := p.limit.sub(p.reserved)
	p.room = headroom(free, p.node.spec.Capacity)
	t.maxRoom = Size{VCPUMilli: max(t.maxRoom.VCPUMilli, free.VCPUMilli), MemoryBytes: max(t.maxRoom.MemoryBytes, free.MemoryBytes)}
}

func (t *targetIndex) insert(p *planNode) {
	if p.moves >= t.maxMoves {
		return
	}
	t.measure(p)
	i, _ := slices.BinarySearchFunc(t.order, p, t.compare)
	t.order = slices.Insert(t.order, i, p)
}

// remove must run before p's reservation changes: p is found by its key.
func (t *targetIndex) remove(p *planNode) {
	if i, ok := slices.BinarySearchFunc(t.order, p, t.compare); ok {
		t.order = slices.Delete(t.order, i, i+1)
	}
}

func (t *targetIndex) firstFit(s Size) *planNode {
	if !s.fits(t.maxRoom) {
		return nil
	}
	for _, p := range t.order {
		if s.fits(p.limit.sub(p.reserved)) {
			return p
		}
	}
	return nil
}
