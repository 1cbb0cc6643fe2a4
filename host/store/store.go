// Package store keeps the fleet's state: nodes and VMs, each with an
// optimistic-concurrency version, and a feed of every change.
//
// The control loop sees only the Store interface so that the embedded file
// store and a Kubernetes-backed one (resourceVersion, watches) are
// interchangeable. Versions come from one store-wide revision counter that
// every change, deletions included, advances: a version is never reused, so a
// writer holding a copy of an object deleted and created again cannot
// overwrite the new one, and a watcher can tell how far it has read.
package store

import (
	"context"
	"errors"

	"github.com/vertigo-autoscaler/vertigo/host/model"
)

// ErrNotFound: no object of that name is stored.
var ErrNotFound = errors.New("not found")

// ErrConflict: the object's Version is not the stored one (someone else wrote it).
var ErrConflict = errors.New("version conflict")

var errClosed = errors.New("store is closed")

// Store is the fleet's state. Objects go in and come out as copies: changing
// what a Store returned does not change the store.
type Store interface {
	ListNodes(ctx context.Context) ([]model.Node, error) // sorted by name
	// PutNode creates the node when its Version is 0 and updates it when its
	// Version is the stored one; it returns the node with its new Version.
	// A stale Version is ErrConflict; updating a missing node, ErrNotFound.
	PutNode(ctx context.Context, n model.Node) (model.Node, error)
	// DeleteNode removes the node if version is the stored one, or whatever
	// is stored if version is 0.
	DeleteNode(ctx context.Context, name string, version uint64) error
	ListVMs(ctx context.Context) ([]model.VM, error) // sorted by name
	GetVM(ctx context.Context, name string) (model.VM, error)
	PutVM(ctx context.Context, vm model.VM) (model.VM, error)
	DeleteVM(ctx context.Context, name string, version uint64) error
	// Watch streams every change after it is durable, in the order the
	// changes were made, until ctx ends or the store closes; then the
	// channel is closed. A slow reader delays only itself: no change is
	// dropped. To follow the state without a gap, call Watch before listing
	// and skip events whose Version is not above the listed object's.
	Watch(ctx context.Context) (<-chan Event, error)
	Close() error
}

// EventKind says which kind of object an Event carries.
type EventKind string

const (
	KindNode EventKind = "node"
	KindVM   EventKind = "vm"
)

// Event is one change. Node or VM (per Kind) is the object as stored; for a
// deletion it is the last stored object with Version set to the revision of
// the deletion.
type Event struct {
	Kind    EventKind
	Node    *model.Node
	VM      *model.VM
	Deleted bool
}
