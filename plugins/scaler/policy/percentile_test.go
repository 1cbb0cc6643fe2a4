package policy_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/plugins/scaler/policy"
)

func percentileConfig() policy.Config {
	c := policy.DefaultConfig()
	c.Mode = policy.ModePercentile
	return c
}

// minutely is a window of one sample per value, a minute apart, ending at end.
func minutely(end time.Time, loads []float64, used []uint64) policy.Window {
	var w policy.Window
	for i := range loads {
		w.T = append(w.T, end.Add(time.Duration(i-len(loads)+1)*time.Minute))
	}
	w.Load1, w.MemoryUsed = loads, used
	return w
}

func repeat[T any](v T, n int) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// Nineteen samples of 1 core and one of 3 (the newest, weighing a little
// more): p50 and p90 fall in 1.0's bucket, p95 in 3.0's. Bucket b starts at
// 10*(1.05^b-1)/0.05 milli-vCPU: 1000 is in bucket 36, which ends at
// 200*(1.05^37-1) = 1016.3; 3000 in bucket 56, ending at 3027.2. Plus 15%:
// 1168.7 and 3481.2, rounded up to quarters: keep the size in [1.25, 3.5],
// target 1.25.
func TestPercentileResizesOnlyOutsideTheRange(t *testing.T) {
	loads := append(repeat(1.0, 19), 3.0)
	w := minutely(t0, loads, repeat[uint64](gib, 20))
	for _, tc := range []struct {
		current, want int64
	}{{4000, 1250}, {3500, 3500}, {2000, 2000}, {1250, 1250}, {1000, 1250}, {250, 1250}} {
		out := policy.Decide(percentileConfig(), policy.Input{
			Now: t0, Current: policy.Size{VCPUMilli: tc.current, MemoryBytes: 2 * gib}, Bounds: quarterCU(), Metrics: w,
		})
		require.Equal(t, tc.want, out.Goal.VCPUMilli, "current %d: %s", tc.current, out.Reason)
		requireContract(t, quarterCU(), out.Goal)
	}
}

func TestPercentileCountsASampleOnce(t *testing.T) {
	cfg := percentileConfig()
	in := policy.Input{Now: t0, Current: cu(1), Bounds: quarterCU(), Metrics: minutely(t0, []float64{1, 1, 1, 4}, nil)}
	first := policy.Decide(cfg, in)
	in.State = first.State
	again := policy.Decide(cfg, in)
	require.Equal(t, first.State, again.State, "the same window handed over twice")
	require.Equal(t, first.Goal, again.Goal)

	// Decide leaves its input alone: the same question, the same answer.
	next := t0.Add(time.Hour)
	in = policy.Input{Now: next, Current: cu(1), Bounds: quarterCU(), State: first.State, Metrics: minutely(next, []float64{2, 2}, nil)}
	a, b := policy.Decide(cfg, in), policy.Decide(cfg, in)
	require.Equal(t, a, b)
	require.Equal(t, a.State.Encode(), b.State.Encode())
	require.NotEqual(t, first.State.Encode(), a.State.Encode())
}

// Ten samples of 4 cores, then ten of 1 core five half-lives later: the
// recent samples weigh 32 times more, so p95 is 1 core, not 4.
func TestPercentileForgetsWithTheHalfLife(t *testing.T) {
	cfg := percentileConfig()
	old := minutely(t0, repeat(4.0, 10), nil)
	out := policy.Decide(cfg, policy.Input{Now: t0, Current: cu(1), Bounds: quarterCU(), Metrics: old})
	require.Equal(t, int64(4750), out.Goal.VCPUMilli, out.Reason) // 4000: bucket end 4124.7, +15% = 4743.4

	later := t0.Add(5 * cfg.PercentileHalfLife)
	out = policy.Decide(cfg, policy.Input{Now: later, Current: out.Goal, Bounds: quarterCU(), State: out.State, Metrics: minutely(later, repeat(1.0, 10), nil)})
	require.Equal(t, int64(1250), out.Goal.VCPUMilli, out.Reason)

	// With a half-life of a year the old samples still count in full: half
	// the weight is 4 cores, p95 among them.
	cfg.PercentileHalfLife = 365 * 24 * time.Hour
	out = policy.Decide(cfg, policy.Input{Now: t0, Current: cu(1), Bounds: quarterCU(), Metrics: old})
	out = policy.Decide(cfg, policy.Input{Now: later, Current: out.Goal, Bounds: quarterCU(), State: out.State, Metrics: minutely(later, repeat(1.0, 10), nil)})
	require.Equal(t, int64(4750), out.Goal.VCPUMilli, out.Reason)
}

// VPA sizes memory for the peak of each interval: a spike counts at once,
// while its interval is in progress, and ten days of quiet peaks later it
// no longer reaches p90.
func TestPercentileSizesMemoryForPeaks(t *testing.T) {
	cfg := percentileConfig()
	used := append(repeat[uint64](gib, 59), 4608*mib)
	out := policy.Decide(cfg, policy.Input{Now: t0, Current: cu(1), Bounds: quarterCU(), Metrics: minutely(t0, repeat(0.5, 60), used)})
	// 4.5GiB's bucket ends at 4.69GiB; +15% is 5.40GiB, rounded up to 6GiB.
	require.Equal(t, uint64(6*gib), out.Goal.MemoryBytes, out.Reason)

	size, st := out.Goal, out.State
	for day := 1; day <= 10; day++ {
		now := t0.Add(time.Duration(day) * 24 * time.Hour)
		out = policy.Decide(cfg, policy.Input{Now: now, Current: size, Bounds: quarterCU(), State: st, Metrics: minutely(now, repeat(0.5, 60), repeat[uint64](gib, 60))})
		size, st = out.Goal, out.State
	}
	// 1GiB's bucket ends at 1.05GiB; +15% is 1.21GiB, rounded up to 2GiB.
	require.Equal(t, uint64(2*gib), out.Goal.MemoryBytes, out.Reason)
}

// A month of 5-minute samples: the weights are renormalised as they grow,
// and the state stays small and round-trips exactly.
func TestPercentileStateStaysSmall(t *testing.T) {
	cfg := percentileConfig()
	size, st := cu(1), policy.State{}
	for i := range 30 * 288 {
		now := t0.Add(time.Duration(i) * 5 * time.Minute)
		load := 0.2 + float64(i%288)/100 // a daily ramp 0.2..3.07
		out := policy.Decide(cfg, policy.Input{Now: now, Current: size, Bounds: quarterCU(), State: st,
			Metrics: policy.Window{T: []time.Time{now}, Load1: []float64{load}, MemoryUsed: []uint64{uint64(load * gib)}}})
		requireContract(t, quarterCU(), out.Goal)
		size, st = out.Goal, out.State
	}
	b := st.Encode()
	require.Less(t, len(b), 2048, "%s", b)
	back, err := policy.DecodeState(b)
	require.NoError(t, err)
	require.Equal(t, st, back)
	for _, w := range back.Usage.CPU.W {
		require.Less(t, w, uint64(1)<<40, "weights are renormalised")
	}
}

func TestPercentileHoldsWithoutSamples(t *testing.T) {
	out := policy.Decide(percentileConfig(), policy.Input{Now: t0, Current: policy.Size{VCPUMilli: 1500, MemoryBytes: 3 * gib}, Bounds: quarterCU()})
	require.Equal(t, policy.Size{VCPUMilli: 1500, MemoryBytes: 3 * gib}, out.Goal)
	require.Contains(t, out.Reason, "no samples")
}
