package policy_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/plugins/scaler/policy"
)

// withDB adds the database's columns to w: active connections per sample
// (the last len(active) samples; the earlier ones 0) and a steady working
// set.
func withDB(w policy.Window, workingSet uint64, active ...uint32) policy.Window {
	n := len(w.T)
	w.DBActiveConnections = make([]uint32, n)
	copy(w.DBActiveConnections[n-len(active):], active)
	w.DBWorkingSet = make([]uint64, n)
	for i := range w.DBWorkingSet {
		w.DBWorkingSet[i] = workingSet
	}
	return w
}

func TestDefaultKeepsVCPUsForActiveConnections(t *testing.T) {
	cfg := policy.DefaultConfig()
	in := policy.Input{Now: t0, Current: policy.Size{VCPUMilli: 1000, MemoryBytes: 2 * gib}, Bounds: quarterCU(),
		Metrics: steady(t0, 12, 0.5, 500*mib)}
	require.Equal(t, int64(1000), policy.Decide(cfg, in).Goal.VCPUMilli, "load1 alone holds 1 vCPU")

	// Six statements running, where load1 has not caught up yet.
	in.Metrics = withDB(in.Metrics, 0, 6, 6, 6)
	out := policy.Decide(cfg, in)
	require.Equal(t, int64(3000), out.Goal.VCPUMilli, "6 x 0.5 vCPU")
	require.Contains(t, out.Reason, "cpu: db active connections 6.00 over 15s x 0.5 -> 3 vCPU -> 3, up from 1")

	cfg.DBCPUPerActiveConnection = 0
	require.Equal(t, int64(1000), policy.Decide(cfg, in).Goal.VCPUMilli, "0 ignores connections")
}

// One snapshot of the process table is noise: the goal follows the mean of
// the samples within db_active_window of the latest.
func TestActiveConnectionsAreAveragedOverTheirWindow(t *testing.T) {
	cfg := policy.DefaultConfig()
	in := policy.Input{Now: t0, Current: policy.Size{VCPUMilli: 250, MemoryBytes: 2 * gib}, Bounds: quarterCU(),
		Metrics: withDB(steady(t0, 12, 0.1, 500*mib), 0, 40, 2, 4, 6)}
	// Samples 5s apart: the latest three are within 15s; the 40 is not.
	require.Equal(t, int64(2000), policy.Decide(cfg, in).Goal.VCPUMilli, "mean(2,4,6) x 0.5")

	cfg.DBActiveWindow = 0
	require.Equal(t, int64(3000), policy.Decide(cfg, in).Goal.VCPUMilli, "latest sample only: 6 x 0.5")

	cfg.DBActiveWindow = time.Minute
	require.Equal(t, int64(2250), policy.Decide(cfg, in).Goal.VCPUMilli, "52/12 x 0.5 = 2.17, rounded up to the unit")
}

func TestDefaultKeepsTheDatabaseWorkingSetInMemory(t *testing.T) {
	cfg := policy.DefaultConfig()
	in := policy.Input{Now: t0, Current: policy.Size{VCPUMilli: 1000, MemoryBytes: 1 * gib}, Bounds: quarterCU(),
		Metrics: steady(t0, 12, 0.5, 500*mib)}
	require.Equal(t, uint64(1*gib), policy.Decide(cfg, in).Goal.MemoryBytes, "used memory alone fits 1GiB")

	in.Metrics = withDB(in.Metrics, 3*gib)
	out := policy.Decide(cfg, in)
	require.Equal(t, uint64(4*gib), out.Goal.MemoryBytes, "3GiB + 256MiB, rounded up to the unit")
	require.Contains(t, out.Reason, "mem: db working set 3GiB+256MiB -> 3.25GiB -> 4GiB, up from 1GiB")
}

// Downscales after the load is gone stop at the working set.
func TestMemoryNeverShrinksBelowTheWorkingSet(t *testing.T) {
	cfg := policy.DefaultConfig()
	size := policy.Size{VCPUMilli: 1000, MemoryBytes: 8 * gib}
	var state policy.State
	now := t0
	for range 200 { // 1000s: past every stabilization period, many times
		out := policy.Decide(cfg, policy.Input{Now: now, Current: size, Bounds: quarterCU(), State: state,
			Metrics: withDB(steady(now, 12, 0.2, 300*mib), 2*gib+512*mib)})
		size, state = out.Goal, out.State
		require.GreaterOrEqual(t, size.MemoryBytes, uint64(3*gib), out.Reason)
		now = now.Add(5 * time.Second)
	}
	require.Equal(t, uint64(3*gib), size.MemoryBytes, "2.5GiB + 256MiB, rounded up: shrunk to it, not below")
}

// The database's parameters touch nothing when the window has no database
// columns: such a VM is sized exactly as before they existed.
func TestWindowsWithoutDatabaseIgnoreItsParameters(t *testing.T) {
	odd := policy.DefaultConfig()
	odd.DBCPUPerActiveConnection, odd.DBActiveWindow, odd.DBMemoryHeadroom = 4, time.Hour, 64*gib
	for _, w := range []policy.Window{
		steady(t0, 12, 0.5, 500*mib),
		steady(t0, 12, 5, 6*gib),
		{},
	} {
		in := policy.Input{Now: t0, Current: policy.Size{VCPUMilli: 2000, MemoryBytes: 4 * gib}, Bounds: quarterCU(), Metrics: w}
		require.Equal(t, policy.Decide(policy.DefaultConfig(), in), policy.Decide(odd, in))
	}
}
