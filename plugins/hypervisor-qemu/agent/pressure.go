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
