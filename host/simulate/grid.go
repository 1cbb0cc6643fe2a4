package simulate

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Grid is a trace resampled onto the replay's steps: step k is the interval
// (Origin+(k-1)*Step, Origin+k*Step], and the decision at its end sees it.
type Grid struct {
	Step   time.Duration
	Origin int64 // seconds from the trace's start
	Steps  int
	VMs    []Series
}

// Series is one VM's demand per step.
type Series struct {
	ID string
	// Present is false for the steps the trace does not cover (before the
	// VM's first row, after its last, and in gaps): no decision, no count.
	Present []bool
	CPU     []float64 // cores
	// Mem is used bytes; nil when the trace has no memory reading for the
	// VM at all (its memory is then pinned).
	Mem []uint64
}

// HasMemory reports whether any VM of the grid has memory readings.
func (g *Grid) HasMemory() bool {
	for _, s := range g.VMs {
		if s.Mem != nil {
			return true
		}
	}
	return false
}

// NewGrid resamples tr. A row is the average over the interval since the
// VM's previous row (or, for the first row and after a gap longer than two
// steps, over one step); a step's demand is the time-weighted mean of the
// rows that cover it, and the VM counts as present when rows cover at least
// half of the step. A memory reading that is missing stands for the VM's
// previous one (its first, before any).
func NewGrid(tr *Trace, step time.Duration) (*Grid, error) {
	if step < time.Second || step%time.Second != 0 {
		return nil, fmt.Errorf("step: must be a whole number of seconds >= 1s, got %s", step)
	}
	if len(tr.VMs) == 0 {
		return nil, errors.New("the trace has no VMs")
	}
	s := int64(step / time.Second)
	g := &Grid{Step: step, Origin: math.MaxInt64}
	var last int64
	for _, vm := range tr.VMs {
		g.Origin = min(g.Origin, vm.Samples[0].T)
		last = max(last, vm.Samples[len(vm.Samples)-1].T)
	}
	g.Steps = int(ceilDiv(last-g.Origin, s)) + 1
	for _, vm := range tr.VMs {
		g.VMs = append(g.VMs, g.resample(vm, s))
	}
	return g, nil
}

func (g *Grid) resample(vm VMTrace, s int64) Series {
	covered := make([]float64, g.Steps)
	cpu := make([]float64, g.Steps)
	mem := make([]float64, g.Steps)
	readings := memoryReadings(vm.Samples)
	for i, x := range vm.Samples {
		from := x.T - s
		if i > 0 && x.T-vm.Samples[i-1].T <= 2*s {
			from = vm.Samples[i-1].T
		}
		// The steps that (from, x.T] overlaps.
		for k := max(0, ceilDiv(from-g.Origin+1, s)); k < int64(g.Steps); k++ {
			lo, hi := g.Origin+(k-1)*s, g.Origin+k*s
			if lo >= x.T {
				break
			}
			ov := float64(min(hi, x.T) - max(lo, from))
			covered[k] += ov
			cpu[k] += x.CPU * ov
			if readings != nil {
				mem[k] += float64(readings[i]) * ov
			}
		}
	}
	out := Series{ID: vm.ID, Present: make([]bool, g.Steps), CPU: make([]float64, g.Steps)}
	if readings != nil {
		out.Mem = make([]uint64, g.Steps)
	}
	for k, c := range covered {
		if c*2 < float64(s) {
			continue
		}
		out.Present[k] = true
		out.CPU[k] = cpu[k] / c
		if out.Mem != nil {
			out.Mem[k] = uint64(math.Round(mem[k] / c))
		}
	}
	return out
}

// memoryReadings fills each missing reading with the one before it (the
// first reading, before any); nil when there is none at all.
func memoryReadings(samples []Sample) []uint64 {
	var prev uint64
	for _, x := range samples {
		if x.Mem > 0 {
			prev = x.Mem
			break
		}
	}
	if prev == 0 {
		return nil
	}
	out := make([]uint64, len(samples))
	for i, x := range samples {
		if x.Mem > 0 {
			prev = x.Mem
		}
		out[i] = prev
	}
	return out
}

// ceilDiv is a/b rounded up, for b > 0.
func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a > 0) == (b > 0) {
		q++
	}
	return q
}
