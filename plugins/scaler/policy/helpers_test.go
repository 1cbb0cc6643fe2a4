package policy_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/plugins/scaler/policy"
)

const (
	mib = 1 << 20
	gib = 1 << 30
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// quarterCU are bounds in Neon's granularity: a quarter of 1 vCPU + 4GiB,
// from 0.25 to 8 compute units.
func quarterCU() policy.Bounds {
	return policy.Bounds{
		Min:  policy.Size{VCPUMilli: 250, MemoryBytes: 1 * gib},
		Max:  policy.Size{VCPUMilli: 8000, MemoryBytes: 32 * gib},
		Unit: policy.Size{VCPUMilli: 250, MemoryBytes: 1 * gib},
	}
}

func cu(n float64) policy.Size {
	return policy.Size{VCPUMilli: int64(n * 1000), MemoryBytes: uint64(n * 4 * gib)}
}

// steady is a window of n samples, 5s apart, ending at now, of a constant
// load and memory use.
func steady(now time.Time, n int, load float64, used uint64) policy.Window {
	var w policy.Window
	for i := range n {
		w.T = append(w.T, now.Add(time.Duration(i-n+1)*5*time.Second))
		w.Load1 = append(w.Load1, load)
		w.MemoryUsed = append(w.MemoryUsed, used)
	}
	return w
}

func neonConfig() policy.Config {
	c := policy.DefaultConfig()
	c.Mode = policy.ModeNeon
	return c
}

// requireContract checks the goal contract: within bounds, and per
// dimension a multiple of the unit unless it is a bound itself.
func requireContract(t testing.TB, b policy.Bounds, g policy.Size) {
	t.Helper()
	require.GreaterOrEqual(t, g.VCPUMilli, b.Min.VCPUMilli)
	require.LessOrEqual(t, g.VCPUMilli, b.Max.VCPUMilli)
	require.GreaterOrEqual(t, g.MemoryBytes, b.Min.MemoryBytes)
	require.LessOrEqual(t, g.MemoryBytes, b.Max.MemoryBytes)
	if g.VCPUMilli != b.Min.VCPUMilli && g.VCPUMilli != b.Max.VCPUMilli {
		require.Zero(t, g.VCPUMilli%b.Unit.VCPUMilli, "vCPU goal %d is not a multiple of %d", g.VCPUMilli, b.Unit.VCPUMilli)
	}
	if g.MemoryBytes != b.Min.MemoryBytes && g.MemoryBytes != b.Max.MemoryBytes {
		require.Zero(t, g.MemoryBytes%b.Unit.MemoryBytes, "memory goal %d is not a multiple of %d", g.MemoryBytes, b.Unit.MemoryBytes)
	}
}

func approxGiB(x float64) uint64 { return uint64(math.Round(x * gib)) }

// driver runs one VM tick by tick (5s), keeping a one-minute window of what
// it was fed, and applies every goal at once (the guest always consents).
type driver struct {
	cfg     policy.Config
	bounds  policy.Bounds
	size    policy.Size
	state   policy.State
	now     time.Time
	window  policy.Window
	resizes []time.Duration // since t0
}

func newDriver(cfg policy.Config, size policy.Size) *driver {
	return &driver{cfg: cfg, bounds: quarterCU(), size: size, now: t0}
}

func (d *driver) step(load float64, used uint64) policy.Output {
	w := &d.window
	w.T, w.Load1, w.MemoryUsed = append(w.T, d.now), append(w.Load1, load), append(w.MemoryUsed, used)
	if len(w.T) > 12 {
		w.T, w.Load1, w.MemoryUsed = w.T[1:], w.Load1[1:], w.MemoryUsed[1:]
	}
	out := policy.Decide(d.cfg, policy.Input{Now: d.now, Current: d.size, Bounds: d.bounds, Metrics: *w, State: d.state})
	if out.Goal != d.size {
		d.resizes = append(d.resizes, d.now.Sub(t0))
	}
	d.state, d.size = out.State, out.Goal
	d.now = d.now.Add(5 * time.Second)
	return out
}
