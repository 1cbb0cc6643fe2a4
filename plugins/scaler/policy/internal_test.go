package policy

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const gib = 1 << 30

func windows(seconds []uint32, gibs ...float64) []CacheWindow {
	w := make([]CacheWindow, len(gibs))
	for i, g := range gibs {
		w[i] = CacheWindow{Seconds: seconds[i], Bytes: uint64(g * gib)}
	}
	return w
}

func TestWorkingSet(t *testing.T) {
	minutes := []uint32{60, 120, 180, 240, 300}
	cases := []struct {
		name string
		ws   []CacheWindow
		want float64 // GiB
	}{
		{"single window: no step to project", windows(minutes, 2), 2},
		{"plateau: nothing to project", windows(minutes, 2, 2, 2, 2), 2},
		// Steady growth of 1GiB a step: never cut, half a step projected.
		{"steady growth", windows(minutes, 1, 2, 3, 4, 5), 5.5},
		// Steps 0.5, 0.25, then 2.25 > 3x0.25: cut before 4GiB;
		// 1.75 + 0.5x0.25.
		{"old scan cut off", windows(minutes, 1, 1.5, 1.75, 4, 4.5), 1.875},
		// A rise after a flat step is cut (0 > 3x0); nothing projected.
		{"rise after plateau", windows(minutes, 2, 3, 3, 3.1), 3},
		// A longer window measured smaller counts as flat.
		{"noisy decrease", windows(minutes, 2, 1.9, 1.9), 2},
		// Slopes are per second: 1GiB over 60s then 2GiB over 180s is a
		// slower slope, not a cut.
		{"uneven windows", windows([]uint32{60, 120, 300}, 1, 2, 4), 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := workingSet(c.ws, 3, 0.5)
			require.True(t, ok)
			require.InDelta(t, c.want*gib, got, 1)
		})
	}
	_, ok := workingSet(nil, 3, 0.5)
	require.False(t, ok)
}

func TestLoadTrend(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	w := Window{}
	for i := range 12 { // load rising 0.1 per 5s, ending at 2.1
		w.T = append(w.T, now.Add(time.Duration(i-11)*5*time.Second))
		w.Load1 = append(w.Load1, 1+0.1*float64(i))
	}
	got, ok := loadTrend(w, 30*time.Second)
	require.True(t, ok)
	require.InDelta(t, 2.1+0.6, got, 1e-9, "a line is extrapolated exactly")

	_, ok = loadTrend(w, 0)
	require.False(t, ok, "a zero horizon disables the trend")

	// Noise that happens to end high: the line explains little (R² =
	// 0.086), so its extrapolation is damped to below the last sample.
	noisy := Window{T: w.T[:6], Load1: []float64{2, 2.6, 2, 2.6, 2, 2.6}}
	got, ok = loadTrend(noisy, 30*time.Second)
	require.True(t, ok)
	require.InDelta(t, 2.3+0.0514*2.5+0.086*0.0103*30, got, 0.01)
	require.Less(t, got, 2.6)

	noisy.T, noisy.Load1 = noisy.T[:5], noisy.Load1[:5]
	_, ok = loadTrend(noisy, 30*time.Second)
	require.False(t, ok, "five samples are too few for a trend")
}

func TestFitRoundsUpThenClamps(t *testing.T) {
	d := dim{min: 500, max: 3600, unit: 250}
	// Variables, so the compiler does not fold the sum into an exact 0.3.
	a, b := 0.1, 0.2
	noisy := (a + b) / 0.3 * 1000 // 1000.0000000000001
	require.NotEqual(t, 1000.0, noisy, "the case below needs float noise")
	cases := []struct{ in, want float64 }{
		{1000, 1000},                 // a multiple stays
		{noisy, 1000},                // float noise does not cost a unit
		{1000.0000001 * 1.001, 1250}, // anything more is a unit up
		{3556, 3600},                 // 3750 is clamped to max, which need not be a multiple
		{10, 500},                    // below min
		{-5, 500},
	}
	for _, c := range cases {
		require.Equal(t, c.want, d.fit(c.in), "fit(%v)", c.in)
	}
}

func TestBackoffDoublesUpToTheCap(t *testing.T) {
	cases := []struct {
		base, most time.Duration
		refusals   uint32
		want       time.Duration
	}{
		{30 * time.Second, 10 * time.Minute, 1, 30 * time.Second},
		{30 * time.Second, 10 * time.Minute, 3, 2 * time.Minute},
		{30 * time.Second, 10 * time.Minute, 6, 10 * time.Minute}, // 16m capped
		{0, time.Minute, math.MaxUint32, 0},
		{1 << 62, math.MaxInt64, 10, math.MaxInt64}, // doubling 2^62 must not wrap negative
	}
	for _, c := range cases {
		require.Equal(t, c.want, backoff(c.base, c.most, c.refusals), "%+v", c)
	}
}
