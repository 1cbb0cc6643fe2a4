package main

import "time"

// headroom is the memory the guest keeps free for itself: pressure is
// measured against total - headroom, and a downscale must leave used +
// headroom.
const headroom = 100 << 20

// pressureDetector decides when memory use is high enough to ask for an
// immediate upscale rather than wait for the host's next tick: used above
// 0.85 x (total - headroom), at most once per interval so a guest that
// stays full does not flood the channel.
type pressureDetector struct {
	interval time.Duration
	last     time.Time // last event; zero before the first
}

func newPressureDetector() *pressureDetector { return &pressureDetector{interval: time.Second} }

// overThreshold reports whether used is above the pressure line of total.
func overThreshold(used, total uint64) bool {
	if total <= headroom {
		return true
	}
	return float64(used) > 0.85*float64(total-headroom)
}

// observe takes one memory sample taken at now and reports whether to emit
// a memory_pressure event.
func (d *pressureDetector) observe(now time.Time, m memInfo) bool {
	if !overThreshold(m.Used(), m.Total) {
		return false
	}
	if !d.last.IsZero() && now.Sub(d.last) < d.interval {
		return false
	}
	d.last = now
	return true
}

// cpuStallDetector turns PSI's cumulative CPU stall time into an event
// when tasks waited for a CPU for more than fraction of the last window:
// a CPU load step shows within a few hundred milliseconds, where avg10
// needs seconds to climb past a threshold.
type cpuStallDetector struct {
	fraction float64
	window   int // samples
	interval time.Duration
	samples  []stallSample
	last     time.Time // last event

	// Taking a CPU offline stalls every task for a moment (stop_machine);
	// taken for load, it would undo the downscale at once, again and again.
	// No event until settle after the guest last took CPUs offline.
	settle     time.Duration
	offlines   uint64
	quietUntil time.Time
}

type stallSample struct {
	at      time.Time
	totalUs uint64
}

func newCPUStallDetector() *cpuStallDetector {
	return &cpuStallDetector{fraction: 0.3, window: 3, interval: time.Second, settle: 3 * time.Second}
}

// observe takes the stall total at now, and how many times the guest has
// taken CPUs offline so far, and reports whether to emit a cpu_pressure
// event (at most once per interval).
func (d *cpuStallDetector) observe(now time.Time, totalUs, offlines uint64) bool {
	if offlines != d.offlines {
		d.offlines, d.quietUntil = offlines, now.Add(d.settle)
	}
	d.samples = append(d.samples, stallSample{now, totalUs})
	if len(d.samples) > d.window+1 {
		d.samples = d.samples[1:]
	}
	if len(d.samples) <= d.window {
		return false
	}
	first := d.samples[0]
	elapsed := now.Sub(first.at)
	if elapsed <= 0 || totalUs < first.totalUs {
		return false
	}
	stalled := time.Duration(totalUs-first.totalUs) * time.Microsecond
	if float64(stalled) <= d.fraction*float64(elapsed) || now.Before(d.quietUntil) {
		return false
	}
	if !d.last.IsZero() && now.Sub(d.last) < d.interval {
		return false
	}
	d.last = now
	return true
}
