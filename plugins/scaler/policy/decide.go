package policy

import (
	"math"
	"slices"
	"time"
)

// Decide returns the goal for one VM. It is a pure function of its
// arguments.
func Decide(cfg Config, in Input) Output {
	in.State = in.State.notAfter(unixNano(in.Now))
	switch cfg.Mode {
	case ModeNeon:
		return decideNeon(cfg, in)
	case ModePercentile:
		return decidePercentile(cfg, in)
	case ModePeak:
		return decidePeak(cfg, in)
	}
	return decideDefault(cfg, in)
}

// notAfter pulls times from the future back to now: after the host's clock
// steps back, a stored "upscaled at" must not hold a cooldown for the size
// of the step.
func (s State) notAfter(now int64) State {
	for _, t := range []*int64{&s.EventsSeen, &s.CPU.LowSince, &s.CPU.LastUpscale, &s.Memory.LowSince, &s.Memory.LastUpscale} {
		*t = min(*t, now)
	}
	return s
}

// dim is one scaling dimension in a common currency, float64 base units
// (milli-vCPU or bytes), so that CPU and memory share one code path. Base
// units are whole numbers well below 2^53 and so exact.
type dim struct {
	name                string
	cur, min, max, unit float64
	format              func(float64) string
	brief               bool // no reasons wanted
}

func cpuDim(in Input) dim {
	return dim{
		name: "cpu", format: formatVCPU, brief: in.Brief,
		cur: float64(in.Current.VCPUMilli), min: float64(in.Bounds.Min.VCPUMilli),
		max: float64(in.Bounds.Max.VCPUMilli), unit: float64(in.Bounds.Unit.VCPUMilli),
	}
}

func memDim(in Input) dim {
	return dim{
		name: "mem", format: formatBytes, brief: in.Brief,
		cur: float64(in.Current.MemoryBytes), min: float64(in.Bounds.Min.MemoryBytes),
		max: float64(in.Bounds.Max.MemoryBytes), unit: float64(in.Bounds.Unit.MemoryBytes),
	}
}

// fit is the goal contract: round up to a multiple of the unit, then clamp
// to the bounds. The tolerance keeps float noise (0.9/0.9 = 1.0000000001)
// from costing a whole unit.
func (d dim) fit(x float64) float64 {
	n := math.Ceil(x/d.unit - 1e-9)
	return math.Min(math.Max(n*d.unit, d.min), d.max)
}

// held is the current size as a valid goal: what "no change" means.
func (d dim) held() float64 { return d.fit(d.cur) }

// say is why() unless the caller asked for no reasons (Input.Brief): a
// trace replay keeps none, and formatting them cost a fifth of its
// scaler's CPU. Reasons are built in closures so that, brief, nothing is
// formatted.
func say(brief bool, why func() string) string {
	if brief {
		return ""
	}
	return why()
}

func sizeOf(vcpu, mem float64) Size {
	return Size{VCPUMilli: int64(math.Round(vcpu)), MemoryBytes: uint64(math.Round(mem))}
}

// freshEvents returns the events newer than the state's mark, and the new
// mark.
func freshEvents(events []Event, seen int64) ([]Event, int64) {
	var fresh []Event
	mark := seen
	for _, e := range events {
		t := e.At.UnixNano()
		if t > seen {
			fresh = append(fresh, e)
			mark = max(mark, t)
		}
	}
	return fresh, mark
}

func hasEvent(events []Event, t EventType) bool {
	for _, e := range events {
		if e.Type == t {
			return true
		}
	}
	return false
}

// reportedUsed raises a used-memory reading to what a fresh pressure event
// reported: the guest samples far more often than the window does.
func reportedUsed(used uint64, ok bool, events []Event) (float64, bool) {
	for _, e := range events {
		if e.Type == EventMemoryPressure && e.MemoryUsed > 0 {
			used, ok = max(used, e.MemoryUsed), true
		}
	}
	return float64(used), ok
}

func peak(col []uint64) (uint64, bool) {
	if len(col) == 0 {
		return 0, false
	}
	return slices.Max(col), true
}

func last[T any](col []T) (T, bool) {
	if len(col) == 0 {
		var zero T
		return zero, false
	}
	return col[len(col)-1], true
}

func since(now time.Time, t int64) time.Duration {
	return time.Duration(unixNano(now) - t)
}
