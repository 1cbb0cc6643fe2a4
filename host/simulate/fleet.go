package simulate

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vertigo-autoscaler/vertigo/host/control"
	"github.com/vertigo-autoscaler/vertigo/host/model"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// epoch is the simulated time of the trace's second 0: the plugins need
// times after 1970, and a fixed one keeps replays identical.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// fleet is the simulated world one policy's control loop runs against: it
// is the loop's clock, its guests (metrics from the trace) and its
// hypervisor and migrator (a resize or a move takes effect at once, and a
// guest always consents). It is not a hypervisor plugin: nothing but the
// simulator can drive it.
type fleet struct {
	grid   *Grid
	window int
	index  map[string]int
	// times are the steps' ends in Unix nanoseconds, computed once: every
	// window of every decision reads them.
	times []int64

	// present[i][k] counts the steps before k that VM i is present in, so
	// that a window without gaps is known in O(1).
	present [][]int32

	mu   sync.Mutex
	step int
	// size is what each VM has now; inForce[i][k] is what VM i had during
	// step k, the size the step's demand is measured against.
	size    []model.Size
	inForce [][]model.Size
	// What each VM's guest reported for each step so far, computed once
	// when the step begins: windows overlap by all but one step, and are
	// cut from these instead of being rebuilt.
	cpuPSI, memPSI [][]float64
	used           [][]uint64

	migrations, denied, partial atomic.Int64
}

func newFleet(g *Grid, window int, initial []model.Size) *fleet {
	n := len(g.VMs)
	f := &fleet{
		grid: g, window: window, index: map[string]int{}, times: make([]int64, g.Steps), present: make([][]int32, n),
		size: initial, inForce: make([][]model.Size, n), cpuPSI: make([][]float64, n), memPSI: make([][]float64, n), used: make([][]uint64, n),
	}
	for i, s := range g.VMs {
		f.index[s.ID] = i
		f.present[i] = make([]int32, g.Steps+1)
		for k, p := range s.Present {
			f.present[i][k+1] = f.present[i][k]
			if p {
				f.present[i][k+1]++
			}
		}
		f.inForce[i] = make([]model.Size, g.Steps)
		f.cpuPSI[i] = make([]float64, g.Steps)
		if s.Mem != nil {
			f.memPSI[i], f.used[i] = make([]float64, g.Steps), make([]uint64, g.Steps)
		}
	}
	for k := range f.times {
		f.times[k] = f.at(k).UnixNano()
	}
	return f
}

// begin starts step k: the sizes decided at the end of step k-1 are those
// its demand meets, and what each guest reports for the step follows.
func (f *fleet) begin(k int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.step = k
	for i, s := range f.grid.VMs {
		alloc := f.size[i]
		f.inForce[i][k] = alloc
		if !s.Present[k] {
			continue
		}
		f.cpuPSI[i][k] = stalled(s.CPU[k], float64(alloc.VCPUMilli)/1000)
		if s.Mem != nil {
			f.used[i][k] = min(s.Mem[k], alloc.MemoryBytes)
			f.memPSI[i][k] = stalled(float64(s.Mem[k]), float64(alloc.MemoryBytes))
		}
	}
}

func (f *fleet) at(k int) time.Time {
	return epoch.Add(time.Duration(f.grid.Origin)*time.Second + time.Duration(k)*f.grid.Step)
}

// Now is the end of the current step: the loop decides then.
func (f *fleet) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.at(f.step)
}

// Window is what the VM's guest would have reported over the last window
// steps: load1 is the cores it demanded (a runnable task counts in load1
// whether or not it gets a CPU); CPU PSI "some" is the share of that demand
// the vCPUs in force could not run, 100*(demand-vCPUs)/demand; used memory
// is the demand up to the memory in force, and memory PSI the share beyond
// it, likewise. A VM the trace does not cover at this step reports nothing.
func (f *fleet) Window(vm string) (*pb.MetricsWindow, []*pb.GuestEvent, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, ok := f.index[vm]
	if !ok || !f.grid.VMs[i].Present[f.step] {
		return nil, nil, false
	}
	s := &f.grid.VMs[i]
	from, to := max(0, f.step-f.window+1), f.step+1
	// The columns are shared, not copied: the loop only reads a window,
	// and steps before this one never change again. The capacity is cut
	// so that an append could not write into them.
	w := &pb.MetricsWindow{
		TUnixNano: f.times[from:to:to], Load1: s.CPU[from:to:to], CpuPressureAvg10: f.cpuPSI[i][from:to:to],
	}
	if s.Mem != nil {
		w.MemoryUsedBytes, w.MemoryPressureAvg10 = f.used[i][from:to:to], f.memPSI[i][from:to:to]
	}
	if int(f.present[i][to]-f.present[i][from]) == to-from {
		return w, nil, true
	}
	// A gap in the trace: only the steps it covers were reported.
	g := &pb.MetricsWindow{}
	for k := from; k < to; k++ {
		if !s.Present[k] {
			continue
		}
		j := k - from
		g.TUnixNano = append(g.TUnixNano, w.TUnixNano[j])
		g.Load1 = append(g.Load1, w.Load1[j])
		g.CpuPressureAvg10 = append(g.CpuPressureAvg10, w.CpuPressureAvg10[j])
		if s.Mem != nil {
			g.MemoryUsedBytes = append(g.MemoryUsedBytes, w.MemoryUsedBytes[j])
			g.MemoryPressureAvg10 = append(g.MemoryPressureAvg10, w.MemoryPressureAvg10[j])
		}
	}
	return g, nil, true
}

// stalled is the percentage of demand beyond capacity.
func stalled(demand, capacity float64) float64 {
	if demand <= capacity {
		return 0
	}
	return 100 * (demand - capacity) / demand
}

// Resize applies at once; the guest always consents.
func (f *fleet) Resize(_ context.Context, vm string, target model.Size, _ bool, _ time.Duration) (control.Resized, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, ok := f.index[vm]
	if !ok {
		return control.Resized{}, fmt.Errorf("no simulated VM %q", vm)
	}
	f.size[i] = target
	return control.Resized{Actual: target}, nil
}

// Migrate completes at once: the simulator counts moves, it does not model
// their duration or their cost.
func (f *fleet) Migrate(context.Context, string, string, func(*pb.MigrationProgress)) ([]byte, error) {
	f.migrations.Add(1)
	return nil, nil
}

// Decision, Grant and Denial make the fleet the loop's Recorder.
func (f *fleet) Decision(string) {}

func (f *fleet) Grant(result string) {
	if result == "partial" {
		f.partial.Add(1)
	}
}

func (f *fleet) Denial() { f.denied.Add(1) }

var (
	_ control.Clock      = (*fleet)(nil)
	_ control.Guests     = (*fleet)(nil)
	_ control.Hypervisor = (*fleet)(nil)
	_ control.Migrator   = (*fleet)(nil)
	_ control.Recorder   = (*fleet)(nil)
)
