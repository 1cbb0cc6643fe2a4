package store

import (
	"slices"

	"github.com/vertigo-autoscaler/vertigo/host/model"
)

// kind tells the generic store code how to handle one type of object.
type kind[T any] struct {
	name EventKind
	// dir is the kind's directory in a file store.
	dir string
	// ident exposes the name and, for updating, the version of an object.
	ident func(obj *T) (name string, version *uint64)
	// clone detaches an object from memory the caller may change.
	clone func(obj T) T
	event func(obj *T, deleted bool) Event
}

var nodeKind = kind[model.Node]{
	name:  KindNode,
	dir:   "nodes",
	ident: func(n *model.Node) (string, *uint64) { return n.Name, &n.Version },
	clone: func(n model.Node) model.Node { return n }, // no references to share
	event: func(n *model.Node, deleted bool) Event { return Event{Kind: KindNode, Node: n, Deleted: deleted} },
}

var vmKind = kind[model.VM]{
	name:  KindVM,
	dir:   "vms",
	ident: func(vm *model.VM) (string, *uint64) { return vm.Name, &vm.Version },
	clone: cloneVM,
	event: func(vm *model.VM, deleted bool) Event { return Event{Kind: KindVM, VM: vm, Deleted: deleted} },
}

func cloneVM(vm model.VM) model.VM {
	vm.ScalerState = slices.Clone(vm.ScalerState)
	vm.Handle = slices.Clone(vm.Handle)
	if vm.LastDecision != nil {
		d := *vm.LastDecision
		vm.LastDecision = &d
	}
	return vm
}

// clone gives each watcher its own copy of the object.
func (e Event) clone() Event {
	if e.Node != nil {
		n := *e.Node
		e.Node = &n
	}
	if e.VM != nil {
		vm := cloneVM(*e.VM)
		e.VM = &vm
	}
	return e
}
