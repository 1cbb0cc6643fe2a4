package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/vertigo-autoscaler/vertigo/host/model"
)

// persister makes a change durable before the store acknowledges it.
type persister interface {
	write(dir, name string, obj any) error
	// remove deletes an object; rev is the revision of the deletion, which
	// must survive a restart so versions are never reused.
	remove(dir, name string, rev uint64) error
}

// core is the store's semantics, shared by Memory and File: versions,
// conflicts, the in-memory view and the change feed.
type core struct {
	// writeMu serialises writers and is held across disk I/O, so that
	// readers, who take only mu, never wait for an fsync.
	writeMu sync.Mutex
	// mu guards the fields below. They change only with both locks held,
	// so holding either is enough to read them.
	mu       sync.RWMutex
	rev      uint64
	nodes    map[string]model.Node
	vms      map[string]model.VM
	watchers map[*watcher]struct{}
	closed   bool

	disk persister // nil: nothing to make durable
}

var _ Store = (*Memory)(nil)
var _ Store = (*File)(nil)

func (c *core) init(disk persister, rev uint64, nodes map[string]model.Node, vms map[string]model.VM) {
	c.disk, c.rev, c.nodes, c.vms = disk, rev, nodes, vms
	c.watchers = map[*watcher]struct{}{}
}

func (c *core) ListNodes(ctx context.Context) ([]model.Node, error) {
	return list(ctx, c, &nodeKind, c.nodes)
}

func (c *core) PutNode(ctx context.Context, n model.Node) (model.Node, error) {
	return put(ctx, c, &nodeKind, c.nodes, n)
}

func (c *core) DeleteNode(ctx context.Context, name string, version uint64) error {
	return remove(ctx, c, &nodeKind, c.nodes, name, version)
}

func (c *core) ListVMs(ctx context.Context) ([]model.VM, error) {
	return list(ctx, c, &vmKind, c.vms)
}

func (c *core) PutVM(ctx context.Context, vm model.VM) (model.VM, error) {
	return put(ctx, c, &vmKind, c.vms, vm)
}

func (c *core) DeleteVM(ctx context.Context, name string, version uint64) error {
	return remove(ctx, c, &vmKind, c.vms, name, version)
}

func (c *core) GetVM(ctx context.Context, name string) (model.VM, error) {
	if err := validateName(KindVM, name); err != nil {
		return model.VM{}, err
	}
	if err := c.readable(ctx); err != nil {
		return model.VM{}, err
	}
	defer c.mu.RUnlock()
	vm, ok := c.vms[name]
	if !ok {
		return model.VM{}, fmt.Errorf("vm %q: %w", name, ErrNotFound)
	}
	return cloneVM(vm), nil
}

// readable read-locks the store unless ctx has ended or the store is closed.
func (c *core) readable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return errClosed
	}
	return nil
}

// writable takes the writers' lock unless ctx has ended or the store is closed.
func (c *core) writable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.writeMu.Lock()
	if c.closed {
		c.writeMu.Unlock()
		return errClosed
	}
	return nil
}

func list[T any](ctx context.Context, c *core, k *kind[T], objs map[string]T) ([]T, error) {
	if err := c.readable(ctx); err != nil {
		return nil, err
	}
	defer c.mu.RUnlock()
	out := make([]T, 0, len(objs))
	for _, name := range slices.Sorted(maps.Keys(objs)) {
		out = append(out, k.clone(objs[name]))
	}
	return out, nil
}

func put[T any](ctx context.Context, c *core, k *kind[T], objs map[string]T, obj T) (T, error) {
	var zero T
	obj = k.clone(obj)
	name, version := k.ident(&obj)
	if err := validateName(k.name, name); err != nil {
		return zero, err
	}
	if err := c.writable(ctx); err != nil {
		return zero, err
	}
	defer c.writeMu.Unlock()
	old, exists := objs[name]
	switch {
	case !exists && *version != 0:
		return zero, fmt.Errorf("%s %q (version %d): %w", k.name, name, *version, ErrNotFound)
	case exists && *version == 0:
		return zero, fmt.Errorf("%s %q already exists: %w", k.name, name, ErrConflict)
	case exists:
		if _, stored := k.ident(&old); *version != *stored {
			return zero, fmt.Errorf("%s %q: version %d, stored %d: %w", k.name, name, *version, *stored, ErrConflict)
		}
	}
	*version = c.rev + 1
	if c.disk != nil {
		if err := c.disk.write(k.dir, name, obj); err != nil {
			return zero, fmt.Errorf("%s %q: %w", k.name, name, err)
		}
	}
	c.commit(func() { objs[name] = obj }, k.event(&obj, false))
	return k.clone(obj), nil
}

func remove[T any](ctx context.Context, c *core, k *kind[T], objs map[string]T, name string, version uint64) error {
	if err := validateName(k.name, name); err != nil {
		return err
	}
	if err := c.writable(ctx); err != nil {
		return err
	}
	defer c.writeMu.Unlock()
	old, exists := objs[name]
	if !exists {
		return fmt.Errorf("%s %q: %w", k.name, name, ErrNotFound)
	}
	_, stored := k.ident(&old)
	if version != 0 && version != *stored {
		return fmt.Errorf("%s %q: version %d, stored %d: %w", k.name, name, version, *stored, ErrConflict)
	}
	*stored = c.rev + 1
	if c.disk != nil {
		if err := c.disk.remove(k.dir, name, *stored); err != nil {
			return fmt.Errorf("%s %q: %w", k.name, name, err)
		}
	}
	c.commit(func() { delete(objs, name) }, k.event(&old, true))
	return nil
}

// commit applies a change that is already durable and tells the watchers,
// under one lock so that every watcher sees changes in revision order.
func (c *core) commit(apply func(), ev Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rev++
	apply()
	for w := range c.watchers {
		w.push(ev.clone())
	}
}

func (c *core) Watch(ctx context.Context) (<-chan Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	w := newWatcher()
	c.watchers[w] = struct{}{}
	out := make(chan Event)
	go func() {
		w.run(ctx, out)
		c.mu.Lock()
		delete(c.watchers, w)
		c.mu.Unlock()
	}()
	return out, nil
}

// shut closes the store and ends the watchers once they have delivered
// what they hold. It reports whether this call was the one that closed it.
func (c *core) shut() bool {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.closed = true
	for w := range c.watchers {
		w.end()
	}
	return true
}
