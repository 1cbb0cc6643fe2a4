package policy_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/plugins/scaler/policy"
)

func TestPeakGrowsToTheHighestNeedAndStays(t *testing.T) {
	cfg := policy.DefaultConfig()
	cfg.Mode = policy.ModePeak
	size, st := cu(1), policy.State{}
	for _, step := range []struct {
		load float64
		used uint64
		want policy.Size
	}{
		// 1/0.9 = 1.11 -> 1.25 vCPU; (2GiB+100MiB)/0.75 = 2.8GiB -> 3GiB.
		{1, 2 * gib, policy.Size{VCPUMilli: 1250, MemoryBytes: 3 * gib}},
		// 3.6/0.9 = 4 vCPU exactly.
		{3.6, 2 * gib, policy.Size{VCPUMilli: 4000, MemoryBytes: 3 * gib}},
		{0.1, 512 * mib, policy.Size{VCPUMilli: 4000, MemoryBytes: 3 * gib}},
	} {
		out := policy.Decide(cfg, policy.Input{Now: t0, Current: size, Bounds: quarterCU(), State: st, Metrics: steady(t0, 3, step.load, step.used)})
		require.Equal(t, step.want, out.Goal, out.Reason)
		size, st = out.Goal, out.State
	}

	// No memory column: memory holds whatever the CPU does.
	w := steady(t0, 3, 2.7, 0)
	w.MemoryUsed = nil
	out := policy.Decide(cfg, policy.Input{Now: t0, Current: policy.Size{VCPUMilli: 500, MemoryBytes: 5 * gib}, Bounds: quarterCU(), Metrics: w})
	require.Equal(t, policy.Size{VCPUMilli: 3000, MemoryBytes: 5 * gib}, out.Goal, out.Reason)
}
