// Package fleet is the placement policy's accounting: nodes with a capacity
// and a watermark, VMs each reserving a size on exactly one node, and the
// decisions taken over them (grow, place, plan migrations).
//
// It is pure and deterministic: no I/O, no clock, and wherever an order can
// show in a result it is fixed by sorting, never by map iteration. Two
// invariants hold after every call, whatever the input: no node's reserved
// size exceeds its capacity in either dimension, and no VM is on two nodes.
// A Fleet is not safe for concurrent use.
package fleet

import (
	"fmt"
	"slices"
	"strings"
)

// NodeSpec is what the host says about a node.
type NodeSpec struct {
	Name     string
	Capacity Size
	// Watermark is the fraction of capacity (0 < w <= 1) above which VMs
	// are moved away.
	Watermark float64
}

// VM is one VM's reservation.
type VM struct {
	Name     string
	Node     string
	Reserved Size
	// Unit is the step in which growth is granted.
	Unit Size
	// DirtyBytesPerSecond makes a VM dearer to migrate; 0 when unknown.
	DirtyBytesPerSecond uint64
}

type node struct {
	spec     NodeSpec
	reserved Size
	// watermark is the largest reservation at or under the watermark,
	// cached because every placement compares against it.
	watermark Size
	vms       map[string]*VM
}

func (n *node) free() Size { return n.spec.Capacity.sub(n.reserved) }

// Fleet is the accounting of every node and VM.
type Fleet struct {
	nodes map[string]*node
	vms   map[string]*VM
}

// New returns an empty fleet.
func New() *Fleet {
	return &Fleet{nodes: map[string]*node{}, vms: map[string]*VM{}}
}

// UpsertNode adds a node or changes its capacity and watermark. Capacity may
// not drop below what is reserved on the node.
func (f *Fleet) UpsertNode(spec NodeSpec) error {
	if inv := spec.validate(); inv != nil {
		return inv
	}
	n, ok := f.nodes[spec.Name]
	if !ok {
		n = &node{vms: map[string]*VM{}}
		f.nodes[spec.Name] = n
	} else if !n.reserved.fits(spec.Capacity) {
		reserved, capacity := exceeding(n.reserved, spec.Capacity)
		return fmt.Errorf("node %s has %s reserved: cannot lower capacity to %s; migrate VMs first", spec.Name, reserved, capacity)
	}
	n.spec = spec
	n.watermark = spec.Capacity.fraction(spec.Watermark)
	return nil
}

// exceeding describes the dimensions in which s exceeds limit, as
// "6 vCPU and 8GiB memory" for s and the same for limit.
func exceeding(s, limit Size) (string, string) {
	var over, under []string
	if s.VCPUMilli > limit.VCPUMilli {
		over = append(over, formatVCPU(s.VCPUMilli))
		under = append(under, formatVCPU(limit.VCPUMilli))
	}
	if s.MemoryBytes > limit.MemoryBytes {
		over = append(over, formatBytes(s.MemoryBytes)+" memory")
		under = append(under, formatBytes(limit.MemoryBytes)+" memory")
	}
	return strings.Join(over, " and "), strings.Join(under, " and ")
}

// RemoveNode removes an empty node. Removing an unknown node does nothing,
// so that a replayed removal is harmless.
func (f *Fleet) RemoveNode(name string) error {
	if inv := requireName("", name); inv != nil {
		return inv
	}
	n, ok := f.nodes[name]
	if !ok {
		return nil
	}
	if len(n.vms) > 0 {
		return fmt.Errorf("node %s still holds VMs %s: migrate or remove them first", name, someNames(n.vms, 5))
	}
	delete(f.nodes, name)
	return nil
}

// someNames lists up to limit of the map's keys, sorted, for messages.
func someNames(vms map[string]*VM, limit int) string {
	names := sortedKeys(vms)
	if len(names) > limit {
		return fmt.Sprintf("%s and %d more", strings.Join(names[:limit], ", "), len(names)-limit)
	}
	return strings.Join(names, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// UpsertVM records a VM on a node, changes its reservation, or moves it
// (a migration completed). It is refused when the new reservation does not
// fit on the node; a decrease on the same node always fits.
func (f *Fleet) UpsertVM(vm VM) error {
	if inv := vm.validate(); inv != nil {
		return inv
	}
	target, ok := f.nodes[vm.Node]
	if !ok {
		return fmt.Errorf("vm %s: unknown node %s", vm.Name, vm.Node)
	}
	room := target.free()
	old, exists := f.vms[vm.Name]
	if exists && old.Node == vm.Node {
		room = room.add(old.Reserved)
	}
	if !vm.Reserved.fits(room) {
		return fmt.Errorf("vm %s (%s) does not fit on node %s: room for %s", vm.Name, vm.Reserved, vm.Node, room)
	}
	if exists {
		f.detach(old)
	}
	f.attach(&vm)
	return nil
}

// RemoveVM frees a VM's reservation. Removing an unknown VM does nothing.
func (f *Fleet) RemoveVM(name string) error {
	if inv := requireName("", name); inv != nil {
		return inv
	}
	if vm, ok := f.vms[name]; ok {
		f.detach(vm)
	}
	return nil
}

func (f *Fleet) attach(vm *VM) {
	n := f.nodes[vm.Node]
	n.vms[vm.Name] = vm
	n.reserved = n.reserved.add(vm.Reserved)
	f.vms[vm.Name] = vm
}

func (f *Fleet) detach(vm *VM) {
	n := f.nodes[vm.Node]
	delete(n.vms, vm.Name)
	n.reserved = n.reserved.sub(vm.Reserved)
	delete(f.vms, vm.Name)
}

// NodeAccount is one node in a Snapshot.
type NodeAccount struct {
	Spec     NodeSpec
	Reserved Size
	VMs      []string // sorted
}

// Snapshot is the whole fleet, nodes and VMs sorted by name.
type Snapshot struct {
	Nodes []NodeAccount
	VMs   []VM
}

// Snapshot copies the fleet's state. Replaying it (every node, then every
// VM) into an empty fleet rebuilds the same state.
func (f *Fleet) Snapshot() Snapshot {
	s := Snapshot{Nodes: make([]NodeAccount, 0, len(f.nodes)), VMs: make([]VM, 0, len(f.vms))}
	for _, name := range sortedKeys(f.nodes) {
		n := f.nodes[name]
		s.Nodes = append(s.Nodes, NodeAccount{Spec: n.spec, Reserved: n.reserved, VMs: sortedKeys(n.vms)})
	}
	for _, name := range sortedKeys(f.vms) {
		s.VMs = append(s.VMs, *f.vms[name])
	}
	return s
}
