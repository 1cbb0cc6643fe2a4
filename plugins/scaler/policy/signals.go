package policy

import "time"

// workingSet estimates a cache's true working set from its working sets over
// windows of growing length. This is our reading of Neon's rule ("cut where
// the growth slope exceeds 3x, project half a step ahead"):
//
//   - a longer window counts at least the pages of a shorter one. For a
//     steady workload the curve flattens once the window spans the working
//     set, and rises again only when it reaches back to older, unrelated
//     activity (a one-off scan, yesterday's workload);
//   - walking from the shortest window, the slope of each step is its growth
//     per second (negative growth counts as flat: the windows are not
//     measured at the same instant). The walk stops before the first step
//     whose slope exceeds cut times the previous step's; the first step has
//     nothing to compare with and is always kept;
//   - the estimate is the largest value kept, plus project times the growth
//     of the last step kept (the working set is still filling at that rate).
func workingSet(ws []CacheWindow, cut, project float64) (float64, bool) {
	if len(ws) == 0 {
		return 0, false
	}
	peak := float64(ws[0].Bytes)
	lastGrowth, prevSlope := 0.0, 0.0
	for i := 1; i < len(ws); i++ {
		growth := max(0, float64(ws[i].Bytes)-float64(ws[i-1].Bytes))
		slope := growth / float64(ws[i].Seconds-ws[i-1].Seconds)
		if i > 1 && slope > cut*prevSlope {
			break
		}
		peak = max(peak, float64(ws[i].Bytes))
		lastGrowth, prevSlope = growth, slope
	}
	return peak + project*lastGrowth, true
}

// minTrendSamples keeps a handful of samples, where a chance pattern fits
// a line well, from passing for a trend.
const minTrendSamples = 6

// loadTrend is a damped projection of load1, horizon after the last sample:
// the least-squares line through the window, extrapolated in proportion to
// how much of the window's variance it explains (R²). A steady ramp is
// extrapolated in full; noise, however it happens to end, hardly at all. It
// is false with too few samples or a zero horizon.
func loadTrend(w Window, horizon time.Duration) (float64, bool) {
	n := len(w.Load1)
	if n < minTrendSamples || horizon <= 0 {
		return 0, false
	}
	end := w.T[n-1]
	var mx, my float64
	for i, y := range w.Load1 {
		mx += w.T[i].Sub(end).Seconds()
		my += y
	}
	mx, my = mx/float64(n), my/float64(n)
	var sxx, syy, sxy float64
	for i, y := range w.Load1 {
		dx, dy := w.T[i].Sub(end).Seconds()-mx, y-my
		sxx += dx * dx
		syy += dy * dy
		sxy += dx * dy
	}
	if sxx == 0 {
		return 0, false
	}
	slope, r2 := sxy/sxx, 0.0
	if syy > 0 {
		r2 = sxy * sxy / (sxx * syy)
	}
	atEnd := my - slope*mx
	return atEnd + r2*slope*horizon.Seconds(), true
}
