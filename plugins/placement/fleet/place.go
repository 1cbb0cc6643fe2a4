package fleet

import (
	"cmp"
	"fmt"
)

// Strategy scores the nodes a VM fits on.
type Strategy string

const (
	// Spread prefers the node with the most headroom left, so growth finds
	// room where it is and migrations stay rare.
	Spread Strategy = "spread"
	// Pack prefers the node left with the least headroom (best fit), so
	// large VMs still find an emptier node.
	Pack Strategy = "pack"
)

// score is in [0, 1], higher is better, from the headroom a node keeps in
// its tightest dimension.
func (s Strategy) score(headroom float64) float64 {
	if s == Pack {
		return 1 - headroom
	}
	return headroom
}

// Placement is where Place put a VM. Node is empty when it fits nowhere.
type Placement struct {
	Node   string
	Score  float64
	Reason string
}

// Place chooses a node for a new VM and reserves size there. Candidates are
// the nodes it fits on; those that stay at or under their watermark come
// first, then the higher strategy score, then the lower node name. Placing
// a VM that is already placed returns its node and changes nothing. Place
// looks at every node once: O(nodes).
func (f *Fleet) Place(vm string, size, unit Size, strategy Strategy) (Placement, error) {
	if inv := cmp.Or(requireName("vm", vm), requireSize("size", size), requirePositive("unit", unit)); inv != nil {
		return Placement{}, inv
	}
	if v, ok := f.vms[vm]; ok {
		n := f.nodes[v.Node]
		return Placement{Node: n.spec.Name, Score: strategy.score(headroom(n.free(), n.spec.Capacity)), Reason: "already placed on node " + n.spec.Name}, nil
	}

	var (
		best                   candidate
		shortVCPU, shortMemory int
	)
	for _, n := range f.nodes {
		free := n.free()
		if !size.fits(free) {
			if size.VCPUMilli > free.VCPUMilli {
				shortVCPU++
			}
			if size.MemoryBytes > free.MemoryBytes {
				shortMemory++
			}
			continue
		}
		c := candidate{
			node:  n,
			under: n.reserved.add(size).fits(n.watermark),
			score: strategy.score(headroom(free.sub(size), n.spec.Capacity)),
		}
		if best.node == nil || c.beats(best) {
			best = c
		}
	}
	if best.node == nil {
		if len(f.nodes) == 0 {
			return Placement{Reason: "no nodes"}, nil
		}
		return Placement{Reason: fmt.Sprintf("fits on no node: of %d nodes, %d lack the vCPU and %d the memory for %s", len(f.nodes), shortVCPU, shortMemory, size)}, nil
	}

	name := best.node.spec.Name
	f.attach(&VM{Name: vm, Node: name, Reserved: size, Unit: unit})
	where := "at or under its watermark"
	if !best.under {
		where = "above its watermark, as no node stays under it"
	}
	return Placement{Node: name, Score: best.score, Reason: fmt.Sprintf("placed on node %s, %s (%s score %.3f)", name, where, strategy, best.score)}, nil
}

// candidate is a node a VM fits on, with what ranks it.
type candidate struct {
	node  *node
	under bool // stays at or under its watermark with the VM
	score float64
}

func (c candidate) beats(o candidate) bool {
	if c.under != o.under {
		return c.under
	}
	if c.score != o.score {
		return c.score > o.score
	}
	return c.node.spec.Name < o.node.spec.Name
}
