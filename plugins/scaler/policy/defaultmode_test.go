package policy_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/plugins/scaler/policy"
)

func TestDefaultScalesDimensionsIndependently(t *testing.T) {
	in := policy.Input{Now: t0, Current: cu(0.25), Bounds: quarterCU(), Metrics: steady(t0, 12, 0.4, 10*gib)}
	out := policy.Decide(policy.DefaultConfig(), in)
	// 0.4/0.9 = 0.44 -> 0.5 vCPU; (10GiB+100MiB)/0.75 = 13.5GiB -> 14GiB.
	require.Equal(t, policy.Size{VCPUMilli: 500, MemoryBytes: 14 * gib}, out.Goal)
	require.Equal(t, "cpu: load1 0.40/0.90 -> 0.44 vCPU -> 0.5, up from 0.25; mem: peak used 10GiB+100MiB/0.75 -> 13.5GiB -> 14GiB, up from 1GiB", out.Reason)

	// Neon couples the dimensions: 3.37 CU -> 3.5 vCPU the database does not use.
	require.Equal(t, cu(3.5), policy.Decide(neonConfig(), in).Goal)
}

func TestDefaultFollowsARisingTrend(t *testing.T) {
	var w policy.Window
	for i := range 12 { // rising 0.1 per 5s to 2.1, so 2.7 in 30s
		w.T = append(w.T, t0.Add(time.Duration(i-11)*5*time.Second))
		w.Load1 = append(w.Load1, 1+0.1*float64(i))
	}
	out := policy.Decide(policy.DefaultConfig(), policy.Input{Now: t0, Current: cu(1), Bounds: quarterCU(), Metrics: w})
	require.Equal(t, int64(3000), out.Goal.VCPUMilli, "2.7/0.9 = 3 vCPU, where load1 alone asks 2.5")
	require.Contains(t, out.Reason, "cpu: load1 trend +30s 2.70/0.90 -> 3 vCPU -> 3, up from 1")
	require.Contains(t, out.Reason, "mem: no samples, hold 4GiB")

	cfg := policy.DefaultConfig()
	cfg.CPUTrendHorizon = 0
	require.Equal(t, int64(2500), policy.Decide(cfg, policy.Input{Now: t0, Current: cu(1), Bounds: quarterCU(), Metrics: w}).Goal.VCPUMilli)
}

func TestPressureReactsAtOnce(t *testing.T) {
	// A VM that just upscaled and whose load says shrink: pressure still
	// grows it this tick.
	justUp := policy.State{
		CPU:    policy.DimState{LastUpscale: t0.Add(-5 * time.Second).UnixNano()},
		Memory: policy.DimState{LastUpscale: t0.Add(-5 * time.Second).UnixNano()},
	}
	base := func() policy.Input {
		return policy.Input{Now: t0, Current: policy.Size{VCPUMilli: 2000, MemoryBytes: 4 * gib}, Bounds: quarterCU(),
			Metrics: steady(t0, 3, 0.5, 1*gib), State: justUp}
	}
	cases := []struct {
		name   string
		edit   func(*policy.Input)
		want   policy.Size
		reason string
	}{
		{"cpu psi scales with the stall", func(in *policy.Input) { in.Metrics.CPUPressure = []float64{0, 0, 35} },
			policy.Size{VCPUMilli: 2750, MemoryBytes: 4 * gib}, "cpu: psi 35.0% > 10% -> 2 x 1.350 = 2.7 -> 2.75, up from 2"},
		{"cpu psi just over the threshold is one unit", func(in *policy.Input) { in.Metrics.CPUPressure = []float64{0, 0, 10.5} },
			policy.Size{VCPUMilli: 2250, MemoryBytes: 4 * gib}, "-> 2.25, up from 2"},
		{"cpu psi at the threshold does nothing", func(in *policy.Input) { in.Metrics.CPUPressure = []float64{0, 0, 10} },
			policy.Size{VCPUMilli: 2000, MemoryBytes: 4 * gib}, "cpu: load1 0.50/0.90 -> 0.56 vCPU -> 0.75, hold 2 (low for 0s of 1m0s)"},
		{"cpu event is one unit", func(in *policy.Input) { in.Events = []policy.Event{{Type: policy.EventCPUPressure, At: t0}} },
			policy.Size{VCPUMilli: 2250, MemoryBytes: 4 * gib}, "cpu: pressure event -> 2+1 unit -> 2.25, up from 2"},
		{"memory psi", func(in *policy.Input) { in.Metrics.MemoryPressure = []float64{0, 0, 20} },
			policy.Size{VCPUMilli: 2000, MemoryBytes: 5 * gib}, "mem: psi 20.0% > 5% -> 4GiB x 1.200 = 4.8GiB, at least +1 unit -> 5GiB, up from 4GiB"},
		{"memory event carries its own reading", func(in *policy.Input) {
			in.Events = []policy.Event{{Type: policy.EventMemoryPressure, At: t0, MemoryUsed: 3900 * mib}}
		}, policy.Size{VCPUMilli: 2000, MemoryBytes: 6 * gib}, "mem: peak used 3.81GiB+100MiB/0.75 -> 5.21GiB -> 6GiB, up from 4GiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := base()
			c.edit(&in)
			out := policy.Decide(policy.DefaultConfig(), in)
			require.Equal(t, c.want, out.Goal)
			require.Contains(t, out.Reason, c.reason)
		})
	}
}

func TestPressureEventIsActedOnOnce(t *testing.T) {
	in := policy.Input{Now: t0, Current: cu(1), Bounds: quarterCU(), Metrics: steady(t0, 3, 0.9, 2*gib),
		Events: []policy.Event{{Type: policy.EventCPUPressure, At: t0.Add(-time.Second)}}}
	out := policy.Decide(policy.DefaultConfig(), in)
	require.Equal(t, int64(1250), out.Goal.VCPUMilli)

	in.Now, in.Current, in.State = t0.Add(5*time.Second), out.Goal, out.State
	out = policy.Decide(policy.DefaultConfig(), in)
	require.Equal(t, int64(1250), out.Goal.VCPUMilli, "the same event handed over again")

	in.Events = append(in.Events, policy.Event{Type: policy.EventCPUPressure, At: t0.Add(4 * time.Second)})
	require.Equal(t, int64(1500), policy.Decide(policy.DefaultConfig(), in).Goal.VCPUMilli, "a newer event")
}

func TestOscillatingLoadDoesNotResizeEveryTick(t *testing.T) {
	// Memory is right at 3GiB: (2GiB+100MiB)/0.75 = 2.8GiB.
	def := newDriver(policy.DefaultConfig(), policy.Size{VCPUMilli: 3000, MemoryBytes: 3 * gib})
	neon := newDriver(neonConfig(), cu(3))
	const ticks = 120 // ten minutes
	for i := range ticks {
		load := 2.0 // goal 2.25
		if i%2 == 1 {
			load = 2.6 // goal 3
		}
		def.step(load, 2*gib)
		neon.step(load, 2*gib)
	}
	require.Empty(t, def.resizes)
	require.Len(t, neon.resizes, ticks, "the baseline follows every swing")

	// A swing inside the downscale margin never starts a downscale either.
	band := newDriver(policy.DefaultConfig(), policy.Size{VCPUMilli: 3000, MemoryBytes: 3 * gib})
	for i := range ticks {
		out := band.step(2.4+0.2*float64(i%2), 2*gib) // goals 2.75 and 3
		require.Zero(t, out.State.CPU.LowSince)
	}
	require.Empty(t, band.resizes)
}

func TestDownscaleWaitsForStabilizationEachStep(t *testing.T) {
	// Goal 1 vCPU; memory already right: (2GiB+100MiB)/0.75 -> 3GiB.
	d := newDriver(policy.DefaultConfig(), policy.Size{VCPUMilli: 4000, MemoryBytes: 3 * gib})
	var sizes []int64
	for range 5*12 + 1 {
		out := d.step(0.9, 2*gib)
		if len(d.resizes) > len(sizes) {
			sizes = append(sizes, out.Goal.VCPUMilli)
		}
	}
	require.Equal(t, []time.Duration{time.Minute, 2 * time.Minute, 3 * time.Minute, 4 * time.Minute, 5 * time.Minute}, d.resizes)
	require.Equal(t, []int64{3500, 3000, 2500, 2000, 1500}, sizes, "two units a step")
}

func TestNoDownscaleWithinCooldownAfterUpscale(t *testing.T) {
	d := newDriver(policy.DefaultConfig(), policy.Size{VCPUMilli: 1000, MemoryBytes: 3 * gib})
	require.Equal(t, int64(4000), d.step(3.5, 2*gib).Goal.VCPUMilli) // 3.89 -> 4 at t0
	var last policy.Output
	for d.now.Before(t0.Add(2 * time.Minute)) {
		last = d.step(0.9, 2*gib)
	}
	require.Equal(t, []time.Duration{0}, d.resizes, "low for 1m55s, but upscaled under 2m ago")
	require.Contains(t, last.Reason, "hold 4 (upscaled 1m55s ago, cooldown 2m0s)")
	require.Equal(t, int64(3500), d.step(0.9, 2*gib).Goal.VCPUMilli)
	require.Equal(t, []time.Duration{0, 2 * time.Minute}, d.resizes)
}

// stabilized is a state whose lower goal has held long enough in both
// dimensions.
func stabilized() policy.State {
	long := t0.Add(-10 * time.Minute).UnixNano()
	return policy.State{CPU: policy.DimState{LowSince: long, LowPeak: 1}, Memory: policy.DimState{LowSince: long, LowPeak: 1}}
}

func TestDownscaleStepLimits(t *testing.T) {
	in := policy.Input{Now: t0, Current: policy.Size{VCPUMilli: 8000, MemoryBytes: 16 * gib}, Bounds: quarterCU(),
		Metrics: steady(t0, 3, 0.1, 1*gib), State: stabilized()}
	out := policy.Decide(policy.DefaultConfig(), in)
	require.Equal(t, policy.Size{VCPUMilli: 7500, MemoryBytes: 15 * gib}, out.Goal, "2 CPU units, 1 memory unit")
	require.Contains(t, out.Reason, "down from 8 to 7.5 (highest goal over 10m0s low; at most 2 units a step)")

	cfg := policy.DefaultConfig()
	cfg.MaxDownscaleStepUnitsCPU, cfg.MaxDownscaleStepUnitsMemory = 4, 3
	require.Equal(t, policy.Size{VCPUMilli: 7000, MemoryBytes: 13 * gib}, policy.Decide(cfg, in).Goal)
}

func TestDownscaleGoesNoLowerThanTheHighestGoalWhileLow(t *testing.T) {
	cfg := policy.DefaultConfig()
	cfg.MaxDownscaleStepUnitsCPU = 100
	cfg.CPUTrendHorizon = 0 // the single high sample would otherwise read as a rise
	d := newDriver(cfg, policy.Size{VCPUMilli: 4000, MemoryBytes: 3 * gib})
	for i := range 13 {
		load := 0.9 // goal 1
		if i == 6 {
			load = 2.2 // goal 2.5: still low against 4, so the hold goes on
		}
		d.step(load, 2*gib)
	}
	require.Equal(t, []time.Duration{time.Minute}, d.resizes)
	require.Equal(t, int64(2500), d.size.VCPUMilli)
}

func TestRefusalBackoffAndForcing(t *testing.T) {
	cases := []struct {
		refusals uint32
		ago      time.Duration
		want     int64 // vCPU goal from 4
		force    bool
		reason   string
	}{
		{1, 29 * time.Second, 4000, false, "guest refused 1 times, back-off 30s, next try in 1s"},
		{1, 30 * time.Second, 3500, false, "retry after 1 refusals"},
		{2, 59 * time.Second, 4000, false, "back-off 1m0s"},
		{2, time.Minute, 3500, false, "retry after 2 refusals"},
		{3, 119 * time.Second, 4000, false, "back-off 2m0s"},
		{3, 2 * time.Minute, 3750, true, "forced one-unit step after 3 refusals: the guest may not veto"},
		{40, 599 * time.Second, 4000, false, "back-off 10m0s"}, // capped, and no overflow
		{40, 10 * time.Minute, 3750, true, "forced one-unit step after 40 refusals"},
	}
	for _, c := range cases {
		out := policy.Decide(policy.DefaultConfig(), policy.Input{
			Now: t0, Current: policy.Size{VCPUMilli: 4000, MemoryBytes: 3 * gib}, Bounds: quarterCU(),
			Metrics: steady(t0, 3, 0.9, 2*gib), State: stabilized(),
			Refusals: c.refusals, LastRefusal: t0.Add(-c.ago),
		})
		require.Equal(t, c.want, out.Goal.VCPUMilli, "%d refusals, %s ago", c.refusals, c.ago)
		require.Equal(t, c.force, out.ForceDownscale, "%d refusals, %s ago", c.refusals, c.ago)
		require.Contains(t, out.Reason, c.reason)
	}
}

func TestNoRefusalBackoffForcesAtOnce(t *testing.T) {
	cfg := policy.DefaultConfig()
	cfg.RefusalBackoff = 0
	out := policy.Decide(cfg, policy.Input{
		Now: t0, Current: policy.Size{VCPUMilli: 4000, MemoryBytes: 3 * gib}, Bounds: quarterCU(),
		Metrics: steady(t0, 3, 0.9, 2*gib), State: stabilized(), Refusals: math.MaxUint32, LastRefusal: t0,
	})
	require.Equal(t, int64(3750), out.Goal.VCPUMilli)
	require.True(t, out.ForceDownscale)
}

func TestForceOnlyWithADownscale(t *testing.T) {
	out := policy.Decide(policy.DefaultConfig(), policy.Input{
		Now: t0, Current: policy.Size{VCPUMilli: 1000, MemoryBytes: 3 * gib}, Bounds: quarterCU(),
		Metrics: steady(t0, 3, 0.9, 2*gib), Refusals: 9,
	})
	require.Equal(t, policy.Size{VCPUMilli: 1000, MemoryBytes: 3 * gib}, out.Goal)
	require.False(t, out.ForceDownscale)
}

func TestNoSamplesHolds(t *testing.T) {
	// The current size is off the unit grid: holding aligns it up.
	out := policy.Decide(policy.DefaultConfig(), policy.Input{Now: t0, Current: policy.Size{VCPUMilli: 1100, MemoryBytes: 3 * gib}, Bounds: quarterCU()})
	require.Equal(t, policy.Size{VCPUMilli: 1250, MemoryBytes: 3 * gib}, out.Goal)
	require.Equal(t, "cpu: no samples, hold 1.25; mem: no samples, hold 3GiB", out.Reason)
}

func TestCurrentOutsideBoundsIsPulledIn(t *testing.T) {
	b := quarterCU()
	b.Max = policy.Size{VCPUMilli: 2000, MemoryBytes: 8 * gib}
	out := policy.Decide(policy.DefaultConfig(), policy.Input{Now: t0, Current: policy.Size{VCPUMilli: 6000, MemoryBytes: 16 * gib}, Bounds: b, Metrics: steady(t0, 3, 5, 7*gib)})
	require.Equal(t, b.Max, out.Goal)
}

func TestStateFromTheFutureDoesNotWedge(t *testing.T) {
	// The host's clock stepped back an hour since these were stored.
	future := t0.Add(time.Hour).UnixNano()
	d := newDriver(policy.DefaultConfig(), policy.Size{VCPUMilli: 4000, MemoryBytes: 3 * gib})
	d.state = policy.State{CPU: policy.DimState{LowSince: future, LastUpscale: future}, EventsSeen: future}
	for d.now.Before(t0.Add(2*time.Minute + time.Second)) {
		d.step(0.9, 2*gib)
	}
	require.Equal(t, []time.Duration{2 * time.Minute}, d.resizes, "cooldown counted from now, not from an hour ahead")
}

func TestMemoryFollowsThePeakOfTheWindow(t *testing.T) {
	w := steady(t0, 12, 0.9, 1*gib)
	w.MemoryUsed[3] = 3 * gib // a big sort forty seconds ago
	in := policy.Input{Now: t0, Current: policy.Size{VCPUMilli: 1000, MemoryBytes: 2 * gib}, Bounds: quarterCU(), Metrics: w}
	out := policy.Decide(policy.DefaultConfig(), in)
	require.Equal(t, uint64(5*gib), out.Goal.MemoryBytes, "(3GiB+100MiB)/0.75 = 4.13GiB")
	require.Contains(t, out.Reason, "mem: peak used 3GiB+100MiB/0.75 -> 4.13GiB -> 5GiB, up from 2GiB")

	// Neon sizes for the latest sample: (1GiB+100MiB)/0.75/4GiB = 0.37 CU.
	require.Equal(t, cu(1), policy.Decide(neonConfig(), in).Goal)
}
