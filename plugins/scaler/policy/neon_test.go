package policy_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/plugins/scaler/policy"
)

// Hand-computed from anchors.md: goal CU = max(load1/0.9/1, (used+100MiB)/
// 0.75/4GiB, working set/0.75/4GiB), rounded up to 0.25 CU.
func TestNeonFormulas(t *testing.T) {
	cache := []policy.CacheWindow{ // see TestWorkingSet: estimate 1.875GiB
		{Seconds: 60, Bytes: 1 * gib}, {Seconds: 120, Bytes: 1536 * mib}, {Seconds: 180, Bytes: 1792 * mib},
		{Seconds: 240, Bytes: 4 * gib}, {Seconds: 300, Bytes: 4608 * mib},
	}
	cases := []struct {
		name   string
		load   float64
		used   uint64
		cache  []policy.CacheWindow
		want   policy.Size
		reason string
	}{
		// 3.2/0.9 = 3.556 CU -> 3.75; memory (1.2GiB+100MiB)/0.75/4GiB = 0.433 CU.
		{"cpu", 3.2, approxGiB(1.2), nil, cu(3.75), "cpu load1 3.20/0.90/1 vCPU = 3.556 CU"},
		// (5GiB+100MiB)/0.75/4GiB = 5220/3072 = 1.699 CU -> 1.75.
		{"memory", 0.5, 5 * gib, nil, cu(1.75), "mem (5GiB+100MiB)/0.75/4GiB = 1.699 CU"},
		// 1.875GiB/0.75/4GiB = 0.625 CU -> 0.75; cpu 0.2/0.9 = 0.222, mem 0.199.
		{"cache", 0.2, 512 * mib, cache, cu(0.75), "cache 1.88GiB/0.75/4GiB = 0.625 CU"},
		// Exactly 1 CU must not become 1.25 through float noise.
		{"exact", 0.9, 0, nil, cu(1), "goal 1.000 -> 1 CU"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := policy.Decide(neonConfig(), policy.Input{
				Now: t0, Current: cu(1), Bounds: quarterCU(),
				Metrics: steady(t0, 12, c.load, c.used), Cache: c.cache,
			})
			require.Equal(t, c.want, out.Goal)
			require.Contains(t, out.Reason, c.reason)
			require.False(t, out.ForceDownscale)
		})
	}
}

func TestNeonComputeUnitIsConfigurable(t *testing.T) {
	cfg := neonConfig()
	cfg.NeonCUVCPUs, cfg.NeonCUMemory = 2, 8*gib
	// 3.2/0.9/2 = 1.778 CU -> 2 CU of 2 vCPU + 8GiB.
	out := policy.Decide(cfg, policy.Input{Now: t0, Current: cu(1), Bounds: quarterCU(), Metrics: steady(t0, 3, 3.2, gib)})
	require.Equal(t, policy.Size{VCPUMilli: 4000, MemoryBytes: 16 * gib}, out.Goal)
}

func TestNeonDownscalesOneCUAtATime(t *testing.T) {
	out := policy.Decide(neonConfig(), policy.Input{Now: t0, Current: cu(4), Bounds: quarterCU(), Metrics: steady(t0, 12, 0.45, gib)})
	require.Equal(t, cu(3), out.Goal)
	require.Contains(t, out.Reason, "downscale limited to 1 CU")
}

func TestNeonClampsToBounds(t *testing.T) {
	b := quarterCU()
	b.Max = cu(2)
	out := policy.Decide(neonConfig(), policy.Input{Now: t0, Current: cu(1), Bounds: b, Metrics: steady(t0, 3, 7, gib)})
	require.Equal(t, cu(2), out.Goal)
}

func TestNeonMemoryPressureEventUpscalesOneCU(t *testing.T) {
	in := policy.Input{
		Now: t0, Current: cu(1), Bounds: quarterCU(), Metrics: steady(t0, 3, 0.1, 512*mib),
		Events: []policy.Event{{Type: policy.EventMemoryPressure, At: t0.Add(-2 * time.Second)}},
	}
	out := policy.Decide(neonConfig(), in)
	require.Equal(t, cu(2), out.Goal)

	// Handed over again, the same event is not acted on twice.
	in.State, in.Current = out.State, cu(2)
	out = policy.Decide(neonConfig(), in)
	require.Equal(t, cu(1), out.Goal, "back down by one CU, not up again")
}

func TestNeonIgnoresCPUPressureAndNeverForces(t *testing.T) {
	w := steady(t0, 3, 0.45, gib)
	w.CPUPressure = []float64{80, 80, 80}
	out := policy.Decide(neonConfig(), policy.Input{
		Now: t0, Current: cu(2), Bounds: quarterCU(), Metrics: w,
		Events:   []policy.Event{{Type: policy.EventCPUPressure, At: t0}},
		Refusals: 50,
	})
	require.Equal(t, cu(1), out.Goal)
	require.False(t, out.ForceDownscale)
	require.Contains(t, out.Reason, "50 refusals: the guest may veto")
}
