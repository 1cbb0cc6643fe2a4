package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/model"
)

// Every Store must pass these with the same expectations.
var implementations = []struct {
	name string
	open func(t *testing.T) Store
}{
	{"memory", func(t *testing.T) Store { return NewMemory() }},
	{"file", func(t *testing.T) Store {
		f, err := OpenFile(filepath.Join(t.TempDir(), "state"))
		require.NoError(t, err)
		return f
	}},
}

var conformance = []struct {
	name string
	run  func(t *testing.T, s Store)
}{
	{"node create update delete", testNodeLifecycle},
	{"vm create update delete", testVMLifecycle},
	{"stale versions conflict", testConflicts},
	{"missing objects", testNotFound},
	{"delete with version 0 is unconditional", testDeleteAnyVersion},
	{"versions are never reused", testVersionsNotReused},
	{"lists are sorted by name", testSorted},
	{"callers get copies", testCopies},
	{"watch streams changes in order", testWatchOrder},
	{"watch keeps up with a slow reader", testWatchSlowReader},
	{"watch ends with its context", testWatchContextEnds},
	{"watch drains then ends on close", testWatchClose},
	{"names are validated", testNames},
	{"ended context and closed store", testContextAndClose},
	{"concurrent writers retrying conflicts", testConcurrentWriters},
}

func TestConformance(t *testing.T) {
	for _, impl := range implementations {
		t.Run(impl.name, func(t *testing.T) {
			for _, tc := range conformance {
				t.Run(tc.name, func(t *testing.T) {
					s := impl.open(t)
					t.Cleanup(func() { require.NoError(t, s.Close()) })
					tc.run(t, s)
				})
			}
		})
	}
}

func testVM(name string) model.VM {
	return model.VM{
		Name:  name,
		Node:  "node-a",
		Phase: model.PhaseRunning,
		Bounds: model.Bounds{
			Min:  model.Size{VCPUMilli: 250, MemoryBytes: 1 << 30},
			Max:  model.Size{VCPUMilli: 4000, MemoryBytes: 16 << 30},
			Unit: model.Size{VCPUMilli: 250, MemoryBytes: 1 << 30},
		},
		Reserved:    model.Size{VCPUMilli: 1000, MemoryBytes: 4 << 30},
		Size:        model.Size{VCPUMilli: 1000, MemoryBytes: 4 << 30},
		ScalerState: []byte(`{"ewma":1.5}`),
		LastDecision: &model.Decision{
			At:     time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
			Goal:   model.Size{VCPUMilli: 1000, MemoryBytes: 4 << 30},
			Reason: "load",
		},
		Handle: []byte("pid=42"),
	}
}

func testNode(name string) model.Node {
	return model.Node{Name: name, Capacity: model.Size{VCPUMilli: 16000, MemoryBytes: 64 << 30}, Watermark: 0.9}
}

func testNodeLifecycle(t *testing.T, s Store) {
	ctx := context.Background()
	created, err := s.PutNode(ctx, testNode("node-a"))
	require.NoError(t, err)
	require.NotZero(t, created.Version)
	want := testNode("node-a")
	want.Version = created.Version
	require.Equal(t, want, created)

	created.Watermark = 0.8
	updated, err := s.PutNode(ctx, created)
	require.NoError(t, err)
	require.Greater(t, updated.Version, created.Version)
	require.Equal(t, 0.8, updated.Watermark)
	nodes, err := s.ListNodes(ctx)
	require.NoError(t, err)
	require.Equal(t, []model.Node{updated}, nodes)

	require.NoError(t, s.DeleteNode(ctx, "node-a", updated.Version))
	nodes, err = s.ListNodes(ctx)
	require.NoError(t, err)
	require.Empty(t, nodes)
}

func testVMLifecycle(t *testing.T, s Store) {
	ctx := context.Background()
	created, err := s.PutVM(ctx, testVM("pg-1"))
	require.NoError(t, err)
	require.NotZero(t, created.Version)
	got, err := s.GetVM(ctx, "pg-1")
	require.NoError(t, err)
	require.Equal(t, created, got)

	got.Size = model.Size{VCPUMilli: 2000, MemoryBytes: 8 << 30}
	updated, err := s.PutVM(ctx, got)
	require.NoError(t, err)
	require.Greater(t, updated.Version, created.Version)
	vms, err := s.ListVMs(ctx)
	require.NoError(t, err)
	require.Equal(t, []model.VM{updated}, vms)

	require.NoError(t, s.DeleteVM(ctx, "pg-1", updated.Version))
	_, err = s.GetVM(ctx, "pg-1")
	require.ErrorIs(t, err, ErrNotFound)
}

func testConflicts(t *testing.T, s Store) {
	ctx := context.Background()
	v1, err := s.PutVM(ctx, testVM("pg-1"))
	require.NoError(t, err)
	_, err = s.PutVM(ctx, testVM("pg-1"))
	require.ErrorIs(t, err, ErrConflict, "creating an existing VM")

	v2, err := s.PutVM(ctx, v1)
	require.NoError(t, err)
	stale := v1
	stale.Phase = model.PhaseFailed
	_, err = s.PutVM(ctx, stale)
	require.ErrorIs(t, err, ErrConflict)
	require.ErrorContains(t, err, fmt.Sprintf("version %d, stored %d", v1.Version, v2.Version))
	require.ErrorIs(t, s.DeleteVM(ctx, "pg-1", v1.Version), ErrConflict)
	got, err := s.GetVM(ctx, "pg-1")
	require.NoError(t, err)
	require.Equal(t, v2, got, "a refused write changes nothing")

	n1, err := s.PutNode(ctx, testNode("node-a"))
	require.NoError(t, err)
	_, err = s.PutNode(ctx, n1)
	require.NoError(t, err)
	_, err = s.PutNode(ctx, n1)
	require.ErrorIs(t, err, ErrConflict)
	require.ErrorIs(t, s.DeleteNode(ctx, "node-a", n1.Version), ErrConflict)
}

func testNotFound(t *testing.T, s Store) {
	ctx := context.Background()
	_, err := s.GetVM(ctx, "pg-1")
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorContains(t, err, `"pg-1"`)
	vm := testVM("pg-1")
	vm.Version = 7
	_, err = s.PutVM(ctx, vm)
	require.ErrorIs(t, err, ErrNotFound, "updating a VM that is not stored")
	require.ErrorIs(t, s.DeleteVM(ctx, "pg-1", 0), ErrNotFound)
	n := testNode("node-a")
	n.Version = 3
	_, err = s.PutNode(ctx, n)
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorIs(t, s.DeleteNode(ctx, "node-a", 0), ErrNotFound)
}

func testDeleteAnyVersion(t *testing.T, s Store) {
	ctx := context.Background()
	_, err := s.PutVM(ctx, testVM("pg-1"))
	require.NoError(t, err)
	_, err = s.PutNode(ctx, testNode("node-a"))
	require.NoError(t, err)
	require.NoError(t, s.DeleteVM(ctx, "pg-1", 0))
	require.NoError(t, s.DeleteNode(ctx, "node-a", 0))
	vms, err := s.ListVMs(ctx)
	require.NoError(t, err)
	require.Empty(t, vms)
	nodes, err := s.ListNodes(ctx)
	require.NoError(t, err)
	require.Empty(t, nodes)
}

func testVersionsNotReused(t *testing.T, s Store) {
	ctx := context.Background()
	old, err := s.PutVM(ctx, testVM("pg-1"))
	require.NoError(t, err)
	require.NoError(t, s.DeleteVM(ctx, "pg-1", old.Version))
	again, err := s.PutVM(ctx, testVM("pg-1"))
	require.NoError(t, err)
	require.Greater(t, again.Version, old.Version+1, "the deletion has a revision of its own")
	_, err = s.PutVM(ctx, old)
	require.ErrorIs(t, err, ErrConflict, "a copy of the deleted VM must not overwrite the new one")

	node, err := s.PutNode(ctx, testNode("node-a"))
	require.NoError(t, err)
	require.Greater(t, node.Version, again.Version, "one revision counter for every kind")
}

func testSorted(t *testing.T, s Store) {
	ctx := context.Background()
	for _, name := range []string{"pg-3", "a", "pg-10", "pg-1", "z.9"} {
		_, err := s.PutVM(ctx, testVM(name))
		require.NoError(t, err)
		_, err = s.PutNode(ctx, testNode(name))
		require.NoError(t, err)
	}
	want := []string{"a", "pg-1", "pg-10", "pg-3", "z.9"}
	vms, err := s.ListVMs(ctx)
	require.NoError(t, err)
	nodes, err := s.ListNodes(ctx)
	require.NoError(t, err)
	var vmNames, nodeNames []string
	for i := range vms {
		vmNames = append(vmNames, vms[i].Name)
		nodeNames = append(nodeNames, nodes[i].Name)
	}
	require.Equal(t, want, vmNames)
	require.Equal(t, want, nodeNames)
}

func testCopies(t *testing.T, s Store) {
	ctx := context.Background()
	events := watch(t, s)
	in := testVM("pg-1")
	stored, err := s.PutVM(ctx, in)
	require.NoError(t, err)
	want := stored
	want.ScalerState = []byte(`{"ewma":1.5}`)
	want.Handle = []byte("pid=42")
	decision := *stored.LastDecision
	want.LastDecision = &decision

	ev := next(t, events)
	listed, err := s.ListVMs(ctx)
	require.NoError(t, err)
	for _, vm := range []*model.VM{&in, &stored, ev.VM, &listed[0]} {
		vm.ScalerState[0] = 'X'
		vm.Handle[0] = 'X'
		vm.LastDecision.Reason = "changed by a caller"
	}
	got, err := s.GetVM(ctx, "pg-1")
	require.NoError(t, err)
	require.Equal(t, want, got)
}

func testWatchOrder(t *testing.T, s Store) {
	ctx := context.Background()
	events := watch(t, s)
	other := watch(t, s)
	var want []Event
	node, err := s.PutNode(ctx, testNode("node-a"))
	require.NoError(t, err)
	want = append(want, Event{Kind: KindNode, Node: &node})
	vm1, err := s.PutVM(ctx, testVM("pg-1"))
	require.NoError(t, err)
	want = append(want, Event{Kind: KindVM, VM: &vm1})
	migrating := vm1
	migrating.Phase = model.PhaseMigrating
	vm2, err := s.PutVM(ctx, migrating)
	require.NoError(t, err)
	want = append(want, Event{Kind: KindVM, VM: &vm2})
	require.NoError(t, s.DeleteVM(ctx, "pg-1", vm2.Version))
	deletedVM := vm2
	deletedVM.Version = vm2.Version + 1
	want = append(want, Event{Kind: KindVM, VM: &deletedVM, Deleted: true})
	require.NoError(t, s.DeleteNode(ctx, "node-a", 0))
	deletedNode := node
	deletedNode.Version = deletedVM.Version + 1
	want = append(want, Event{Kind: KindNode, Node: &deletedNode, Deleted: true})

	for _, ch := range []<-chan Event{events, other} {
		for i, w := range want {
			require.Equal(t, w, next(t, ch), "event %d", i)
		}
	}
}

func testWatchSlowReader(t *testing.T, s Store) {
	ctx := context.Background()
	events := watch(t, s)
	const writes = 300
	vm, err := s.PutVM(ctx, testVM("pg-1"))
	require.NoError(t, err)
	versions := []uint64{vm.Version}
	for range writes - 1 {
		vm, err = s.PutVM(ctx, vm)
		require.NoError(t, err, "writers must not wait for a reader")
		versions = append(versions, vm.Version)
	}
	for i, v := range versions {
		require.Equal(t, v, next(t, events).VM.Version, "event %d", i)
	}
}

func testWatchContextEnds(t *testing.T, s Store) {
	ctx, cancel := context.WithCancel(context.Background())
	events, err := s.Watch(ctx)
	require.NoError(t, err)
	_, err = s.PutVM(context.Background(), testVM("pg-1"))
	require.NoError(t, err)
	cancel()
	requireClosed(t, events)
	_, err = s.PutVM(context.Background(), testVM("pg-2"))
	require.NoError(t, err, "a gone watcher does not hold writers up")
}

func testWatchClose(t *testing.T, s Store) {
	events := watch(t, s)
	vm, err := s.PutVM(context.Background(), testVM("pg-1"))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.Equal(t, vm.Version, next(t, events).VM.Version, "queued events are delivered before the end")
	requireClosed(t, events)
}

func testNames(t *testing.T, s Store) {
	ctx := context.Background()
	for _, name := range []string{"a", "0", "pg-1", "pg.main_0", strings.Repeat("a", 63)} {
		_, err := s.PutVM(ctx, testVM(name))
		require.NoError(t, err, name)
		_, err = s.PutNode(ctx, testNode(name))
		require.NoError(t, err, name)
	}
	for _, name := range []string{"", "A", "pg-A", "-a", ".a", "_a", "..", "a/b", "../a", "a b", "é", "a\x00", strings.Repeat("a", 64)} {
		wantVM := fmt.Sprintf("vm name %q: must be", name)
		wantNode := fmt.Sprintf("node name %q: must be", name)
		_, err := s.PutVM(ctx, testVM(name))
		require.ErrorContains(t, err, wantVM)
		_, err = s.GetVM(ctx, name)
		require.ErrorContains(t, err, wantVM)
		require.ErrorContains(t, s.DeleteVM(ctx, name, 0), wantVM)
		_, err = s.PutNode(ctx, testNode(name))
		require.ErrorContains(t, err, wantNode)
		require.ErrorContains(t, s.DeleteNode(ctx, name, 0), wantNode)
	}
	vms, err := s.ListVMs(ctx)
	require.NoError(t, err)
	require.Len(t, vms, 5)
}

func testContextAndClose(t *testing.T, s Store) {
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.PutVM(ended, testVM("pg-1"))
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.ListVMs(ended)
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.Watch(ended)
	require.ErrorIs(t, err, context.Canceled)
	vms, err := s.ListVMs(context.Background())
	require.NoError(t, err)
	require.Empty(t, vms, "a write with an ended context does nothing")

	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	ctx := context.Background()
	_, err = s.PutVM(ctx, testVM("pg-1"))
	require.ErrorIs(t, err, errClosed)
	_, err = s.GetVM(ctx, "pg-1")
	require.ErrorIs(t, err, errClosed)
	_, err = s.ListNodes(ctx)
	require.ErrorIs(t, err, errClosed)
	require.ErrorIs(t, s.DeleteVM(ctx, "pg-1", 0), errClosed)
	_, err = s.Watch(ctx)
	require.ErrorIs(t, err, errClosed)
}

// testConcurrentWriters has goroutines increment one counter by
// read-modify-write, retrying on conflict: no increment may be lost. All
// writers read before any writes, so all but one of them must conflict.
func testConcurrentWriters(t *testing.T, s Store) {
	ctx := context.Background()
	const writers, increments = 8, 25
	_, err := s.PutVM(ctx, testVM("pg-1"))
	require.NoError(t, err)
	events := watch(t, s)

	var wg, read sync.WaitGroup
	read.Add(writers)
	gate := make(chan struct{})
	errs := make(chan error, writers)
	var conflicts atomic.Int64
	for range writers {
		wg.Go(func() {
			vm, err := s.GetVM(ctx, "pg-1")
			read.Done()
			<-gate
			for done := 0; err == nil && done < increments; {
				vm.DownscaleRefusals++
				var stored model.VM
				if stored, err = s.PutVM(ctx, vm); err == nil {
					vm = stored
					done++
				} else if errors.Is(err, ErrConflict) {
					conflicts.Add(1)
					vm, err = s.GetVM(ctx, "pg-1")
				}
			}
			errs <- err
		})
	}
	read.Wait()
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.GreaterOrEqual(t, conflicts.Load(), int64(writers-1))
	got, err := s.GetVM(ctx, "pg-1")
	require.NoError(t, err)
	require.Equal(t, uint32(writers*increments), got.DownscaleRefusals)
	for i := uint32(1); i <= writers*increments; i++ {
		require.Equal(t, i, next(t, events).VM.DownscaleRefusals, "events follow the order of the writes")
	}
}

func watch(t *testing.T, s Store) <-chan Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	events, err := s.Watch(ctx)
	require.NoError(t, err)
	return events
}

// eventTimeout only bounds a failing test; passing tests never wait for it.
const eventTimeout = 10 * time.Second

func next(t *testing.T, events <-chan Event) Event {
	t.Helper()
	select {
	case ev, ok := <-events:
		require.True(t, ok, "watch ended early")
		return ev
	case <-time.After(eventTimeout):
		require.FailNow(t, "no event")
		return Event{}
	}
}

func requireClosed(t *testing.T, events <-chan Event) {
	t.Helper()
	timeout := time.After(eventTimeout)
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-timeout:
			require.FailNow(t, "watch did not end")
		}
	}
}
