package history_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/history"
	"github.com/vertigo-autoscaler/vertigo/host/model"
)

var t0 = time.Date(2026, 11, 27, 22, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func point(s int, vcpuMilli int64) history.Point {
	return history.Point{At: at(s), Node: "node-a", Phase: model.PhaseRunning, Size: model.Size{VCPUMilli: vcpuMilli, MemoryBytes: 1 << 30}}
}

func times[T any](list []T, at func(T) time.Time) []time.Time {
	out := make([]time.Time, len(list))
	for i, v := range list {
		out[i] = at(v)
	}
	return out
}

func pointTimes(ps []history.Point) []time.Time {
	return times(ps, func(p history.Point) time.Time { return p.At })
}

func TestSinceReturnsOnlyWhatFollows(t *testing.T) {
	h := history.New(history.Limits{})
	for s := 1; s <= 5; s++ {
		h.AddPoint("pg-2", point(s, 1000))
		h.AddPoint("pg-1", point(s, 2000))
	}
	h.AddDecision("pg-1", model.Decision{At: at(2), Reason: "load", Outcome: "grown"})
	h.AddDecision("pg-1", model.Decision{At: at(4), Reason: "idle", Outcome: "shrunk"})

	all := h.Since(time.Time{})
	require.Equal(t, at(5), all.Latest)
	require.Equal(t, history.DefaultLimits, all.Limits)
	require.Equal(t, []string{"pg-1", "pg-2"}, []string{all.VMs[0].VM, all.VMs[1].VM})
	require.Len(t, all.VMs[0].Points, 5)
	require.Len(t, all.VMs[0].Decisions, 2)

	later := h.Since(at(3))
	require.Equal(t, []time.Time{at(4), at(5)}, pointTimes(later.VMs[0].Points))
	require.Equal(t, "idle", later.VMs[0].Decisions[0].Reason)
	require.Len(t, later.VMs[0].Decisions, 1)

	quiet := h.Since(at(5))
	require.Len(t, quiet.VMs, 2, "a VM with nothing new is still listed")
	require.NotNil(t, quiet.VMs[0].Points, "empty lists, not null in JSON")
	require.Empty(t, quiet.VMs[0].Points)
	require.Empty(t, quiet.VMs[0].Decisions)
	require.NotNil(t, quiet.VMs[0].Migrations)
}

func TestSinceReturnsCopies(t *testing.T) {
	h := history.New(history.Limits{})
	h.AddPoint("pg-1", point(1, 1000))
	snap := h.Since(time.Time{})
	snap.VMs[0].Points[0].Node = "changed"
	require.Equal(t, "node-a", h.Since(time.Time{}).VMs[0].Points[0].Node)
}

func TestOutOfOrderRecordsAreDropped(t *testing.T) {
	h := history.New(history.Limits{})
	h.AddPoint("pg-1", point(2, 1000))
	h.AddPoint("pg-1", point(1, 3000))
	h.AddPoint("pg-1", point(2, 3000))
	h.AddPoint("pg-1", point(3, 2000))
	got := h.Since(time.Time{}).VMs[0].Points
	require.Equal(t, []time.Time{at(2), at(3)}, pointTimes(got))
	require.Equal(t, int64(1000), got[0].Size.VCPUMilli)
}

func TestTheSameDecisionIsRecordedOnce(t *testing.T) {
	h := history.New(history.Limits{})
	d := model.Decision{At: at(1), Reason: "load 1.8 over target", Outcome: "grown"}
	for range 3 { // the loop offers a VM's last decision on every pass
		h.AddDecision("pg-1", d)
	}
	h.AddDecision("pg-1", model.Decision{At: at(7), Reason: "steady", Outcome: "unchanged"})
	got := h.Since(time.Time{}).VMs[0].Decisions
	require.Equal(t, []string{"grown", "unchanged"}, []string{got[0].Outcome, got[1].Outcome})
}

func TestMigrationStatesAreRecordedOnChange(t *testing.T) {
	h := history.New(history.Limits{})
	m := history.Migration{From: "node-a", To: "node-b", Reason: "above watermark", State: "running", ElapsedNanos: 1e9}
	for s, state := range []string{"running", "running", "completed", "completed"} {
		m.At, m.State = at(s), state
		h.AddMigration("pg-1", m)
	}
	m.At, m.State, m.From, m.To = at(9), "completed", "node-b", "node-a"
	h.AddMigration("pg-1", m)
	got := h.Since(time.Time{}).VMs[0].Migrations
	require.Equal(t, []time.Time{at(0), at(2), at(9)}, times(got, func(m history.Migration) time.Time { return m.At }))
	require.Equal(t, []string{"running", "completed", "completed"}, []string{got[0].State, got[1].State, got[2].State})
	require.Equal(t, "node-a", got[2].To)
}

func TestPointsAreBoundedByCount(t *testing.T) {
	h := history.New(history.Limits{Points: 4})
	for s := 1; s <= 10; s++ {
		h.AddPoint("pg-1", point(s, 1000))
		h.AddDecision("pg-1", model.Decision{At: at(s), Outcome: "unchanged"})
	}
	vm := h.Since(time.Time{}).VMs[0]
	require.Equal(t, []time.Time{at(7), at(8), at(9), at(10)}, pointTimes(vm.Points))
	require.Len(t, vm.Decisions, 4)
	require.Equal(t, at(7), vm.Decisions[0].At)
}

func TestEverythingIsBoundedByAge(t *testing.T) {
	h := history.New(history.Limits{Age: 10 * time.Second})
	for s := 0; s <= 5; s++ {
		h.AddPoint("gone", point(s, 1000))
	}
	h.AddMigration("gone", history.Migration{At: at(5), From: "node-a", To: "node-b", State: "completed"})
	for s := 0; s <= 12; s++ {
		h.AddPoint("pg-1", point(s, 1000))
	}
	snap := h.Since(time.Time{})
	require.Equal(t, []time.Time{at(2), at(3), at(4), at(5)}, pointTimes(snap.VMs[0].Points), "the removed VM ages too")
	require.Equal(t, at(2), snap.VMs[1].Points[0].At)

	h.AddPoint("pg-1", point(16, 1000))
	snap = h.Since(time.Time{})
	require.Len(t, snap.VMs, 1, "a VM with nothing left is forgotten")
	require.Equal(t, "pg-1", snap.VMs[0].VM)

	h.AddPoint("late", point(1, 1000))
	require.Len(t, h.Since(time.Time{}).VMs, 1, "a record already older than the limit is not kept")
}

// Run with -race: writers on several VMs and readers at once, and every
// reader sees each series in order.
func TestConcurrentUse(t *testing.T) {
	h := history.New(history.Limits{Points: 50})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vm := fmt.Sprintf("pg-%d", w)
			for s := range 200 {
				h.AddPoint(vm, point(s, 1000))
				h.AddDecision(vm, model.Decision{At: at(s), Outcome: "unchanged"})
				h.AddMigration(vm, history.Migration{At: at(s), State: fmt.Sprint(s % 2)})
			}
		}()
	}
	// Readers report rather than fail: FailNow must not run outside the
	// test's goroutine.
	problems := make(chan string, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				for _, vm := range h.Since(at(20)).VMs {
					for i := 1; i < len(vm.Points); i++ {
						if !vm.Points[i].At.After(vm.Points[i-1].At) || len(vm.Points) > 50 {
							problems <- fmt.Sprintf("%s: %v", vm.VM, pointTimes(vm.Points))
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	close(problems)
	require.Empty(t, <-problems)
	snap := h.Since(time.Time{})
	require.Len(t, snap.VMs, 4)
	for _, vm := range snap.VMs {
		require.Len(t, vm.Points, 50)
		require.Equal(t, at(199), vm.Points[49].At)
	}
}
