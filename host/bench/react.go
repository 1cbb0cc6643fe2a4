package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/vertigo-autoscaler/vertigo/host/api"
	"github.com/vertigo-autoscaler/vertigo/host/control"
	"github.com/vertigo-autoscaler/vertigo/host/model"
)

const (
	reactWorkers = 3
	// reactTimeout bounds the wait from a load step to resources online.
	reactTimeout = time.Minute
	// loadFor outlasts every measurement: the VM is stopped long before.
	loadFor = 10 * time.Minute
	// agentHeadroom and agentPressure are the guest agent's pressure rule
	// (Neon's): used > agentPressure x (total - agentHeadroom).
	agentHeadroom = 100 << 20
	agentPressure = 0.85
	// pressureMargin is how far past that line a memory step goes, as a
	// fraction of the guest's memory.
	pressureMargin = 0.05
	// guestReportEvery is how often the guest agent reports its metrics.
	guestReportEvery = time.Second
)

// The VMs of a reaction each grow in one dimension only: with the other
// fixed, the load step is the only thing that can move them.
var (
	reactCPU = benchVM{name: "react-cpu", bounds: model.Bounds{
		Min:  model.Size{VCPUMilli: 1000, MemoryBytes: 512 * mib},
		Max:  model.Size{VCPUMilli: 4000, MemoryBytes: 512 * mib},
		Unit: model.Size{VCPUMilli: 250, MemoryBytes: 256 * mib},
	}}
	reactMem = benchVM{name: "react-mem", bounds: model.Bounds{
		Min:  model.Size{VCPUMilli: 1000, MemoryBytes: 512 * mib},
		Max:  model.Size{VCPUMilli: 1000, MemoryBytes: 2 * gib},
		Unit: model.Size{VCPUMilli: 1000, MemoryBytes: 256 * mib},
	}}
)

// dimension is a resource whose reaction is measured.
type dimension struct {
	key  string // of the figures
	vm   benchVM
	goal time.Duration
	// fromEvent: the goal counts from the guest's pressure event (the
	// decision it triggers), as the issue states it for memory, not from
	// the load step: how long a load takes to fill the guest is the
	// load's, not Vertigo's.
	fromEvent bool
	step      string // the load step, for the header
	load      func(api.Usage) api.LoadRequest
	// online is what the guest says it has online; size is the VM's size
	// in this dimension.
	online func(api.Usage) uint64
	size   func(model.Size) uint64
	format func(uint64) string
}

// reactDims in the order of the figures.
var reactDims = []dimension{
	{
		key: "cpu", vm: reactCPU, goal: time.Second,
		step: fmt.Sprintf("%d busy workers", reactWorkers),
		load: func(api.Usage) api.LoadRequest {
			return api.LoadRequest{CPUWorkers: reactWorkers, DurationNs: int64(loadFor)}
		},
		online: func(u api.Usage) uint64 { return uint64(max(u.OnlineVCPUMilli, 0)) },
		size:   func(s model.Size) uint64 { return uint64(max(s.VCPUMilli, 0)) },
		format: func(milli uint64) string { return vcpus(int64(milli)) + " vCPU" },
	},
	{
		key: "mem", vm: reactMem, goal: 500 * time.Millisecond, fromEvent: true,
		step: fmt.Sprintf("memory that takes the guest %.0f%% of its memory past its pressure line (used > %.2f x (total - %s))",
			pressureMargin*100, agentPressure, model.FormatBytes(agentHeadroom)),
		load: func(u api.Usage) api.LoadRequest {
			return api.LoadRequest{MemoryBytes: pressureLoad(u), DurationNs: int64(loadFor)}
		},
		online: func(u api.Usage) uint64 { return u.OnlineMemory },
		size:   func(s model.Size) uint64 { return s.MemoryBytes },
		format: model.FormatBytes,
	},
}

// pressureLoad is the memory that takes a guest which reported u past its
// agent's pressure line by pressureMargin of its memory.
func pressureLoad(u api.Usage) uint64 {
	total := float64(u.OnlineMemory)
	line := agentPressure * max(total-agentHeadroom, 0)
	margin := pressureMargin * total
	return uint64(max(line+margin-float64(u.MemoryUsed), margin))
}

// reaction is one load step followed through the whole pipeline; times
// are from the moment LoadVM returned.
type reaction struct {
	from, to uint64     // online before, and when more was reported
	grown    model.Size // the VM's size once grown: the floor's target
	decided  time.Duration
	recorded time.Duration // the status shows the grown size
	online   time.Duration // the status shows more online: the figure
	// idlePasses are the passes after the step that did not grow the VM.
	idlePasses int
	reason     string
	// overtaken is set when a later pass replaced the growing decision
	// before a poll saw it: the growing pass began at or before decided.
	overtaken bool
}

// decision describes when the growing pass began, and why it grew.
func (r reaction) decision() string {
	if r.overtaken {
		return fmt.Sprintf("at or before +%v (a later pass replaced it within a poll)", round3(r.decided))
	}
	return fmt.Sprintf("at +%v%s (%s)", round3(r.decided), passes(r.idlePasses), r.reason)
}

func react(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("react", flag.ContinueOnError)
	runs := fs.Int("runs", 5, "load steps per resource, each on fresh VMs")
	bin := fs.String("bin", "bin", "directory holding vertigo and the plugins, "+qemuBinary+" included")
	guest := fs.String("guest", "build/guest", "directory holding the guest image (make guest)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := positive(fs, "runs"); err != nil {
		return err
	}
	s, err := newGuestSetup(*bin, *guest)
	if err != nil {
		return err
	}

	fmt.Fprintf(stdout, "react: a load step in a guest until the guest reports more online, through the host "+
		"(loop every %v, scaler and placement defaults), against the same step and Resize straight through %s (the floor); "+
		"fresh VMs every run; steps spread at random over the loop's period, the floor's resizes over the guests' report period (%v); "+
		"status polled every %v\n", loopInterval, qemuBinary, guestReportEvery, statusEvery)
	for _, d := range reactDims {
		fmt.Fprintf(stdout, "  %s: vm %s, %s; step: %s\n", d.key, d.vm.name, describeBounds(d.vm.bounds), d.step)
	}
	floor, err := launchFloor(ctx, s, stderr)
	if err != nil {
		return fmt.Errorf("the floor's plugin: %w", err)
	}
	defer func() { err = errors.Join(err, floor.close()) }()

	through := make([][]reaction, len(reactDims))
	floors := make([][]floorRun, len(reactDims))
	// The host's loop period covers the guest's report period too.
	hostWaits := make([][]time.Duration, len(reactDims))
	floorWaits := make([][]time.Duration, len(reactDims))
	for j := range reactDims {
		hostWaits[j] = stepWaits(*runs, loopInterval, uint64(j))
		floorWaits[j] = stepWaits(*runs, guestReportEvery, uint64(j))
	}
	for i := range *runs {
		waits := make([]time.Duration, len(reactDims))
		for j := range reactDims {
			waits[j] = hostWaits[j][i]
		}
		got, err := reactOnce(ctx, s, waits, stderr)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		for j, d := range reactDims {
			r := got[j]
			row(stdout, fmt.Sprintf("run %d %s through the host", i+1, d.key), "%s -> %s online after %v: size recorded at +%v, decision %s",
				d.format(r.from), d.format(r.to), round3(r.online), round3(r.recorded), r.decision())
			fl, err := floor.resize(ctx, d, fmt.Sprintf("floor-%s-%d", d.key, i+1), r.grown, floorWaits[j][i])
			if err != nil {
				return fmt.Errorf("run %d, floor of %s: %w", i+1, d.key, err)
			}
			row(stdout, fmt.Sprintf("run %d %s floor", i+1, d.key), "%s -> %s online after %v: Resize returned after %v",
				d.format(fl.from), d.format(fl.to), round3(fl.online), round3(fl.returned))
			through[j] = append(through[j], r)
			floors[j] = append(floors[j], fl)
		}
	}

	var f figures
	for j, d := range reactDims {
		online := p50(through[j], func(r reaction) time.Duration { return r.online })
		floorOnline := p50(floors[j], func(r floorRun) time.Duration { return r.online })
		row(stdout, d.key+" p50 through the host", "%v: decision at +%v, size recorded at +%v",
			round3(online), round3(p50(through[j], func(r reaction) time.Duration { return r.decided })),
			round3(p50(through[j], func(r reaction) time.Duration { return r.recorded })))
		row(stdout, d.key+" p50 floor", "%v: Resize returned after %v", round3(floorOnline),
			round3(p50(floors[j], func(r floorRun) time.Duration { return r.returned })))
		fromDecision := p50(through[j], func(r reaction) time.Duration { return r.online - r.decided })
		row(stdout, d.key+" p50 from the decision", "%v (the pass that grew the VM began, to more online)", round3(fromDecision))
		if d.fromEvent {
			row(stdout, fmt.Sprintf("%s goal < %v from the event", d.key, d.goal), "%s", verdict(fromDecision, floorOnline, d.goal, through[j]))
		} else {
			row(stdout, fmt.Sprintf("%s goal < %v", d.key, d.goal), "%s", verdict(online, floorOnline, d.goal, through[j]))
		}
		f.add(d.key+"_p50_ms", millis(online), 0)
		f.add(d.key+"_from_decision_p50_ms", millis(fromDecision), 0)
		f.add(d.key+"_baseline_p50_ms", millis(floorOnline), 0)
	}
	f.addInt("runs", *runs)
	fmt.Fprintln(stdout, f)
	return nil
}

// reactOnce runs a host with fresh VMs and measures one load step in each
// dimension, the step of reactDims[i] waits[i] after the host is ready or
// the previous measurement ended.
func reactOnce(ctx context.Context, s guestSetup, waits []time.Duration, stderr io.Writer) (_ []reaction, err error) {
	// Short: the VMs' unix sockets live under it, and their paths are
	// limited to 107 bytes.
	dir, err := os.MkdirTemp("", "vbr")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	vms := make([]benchVM, len(reactDims))
	for i, d := range reactDims {
		vms[i] = d.vm
	}
	h, err := startQEMUHost(ctx, s, dir, vms, stderr)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, h.close()) }()
	got := make([]reaction, len(reactDims))
	// Memory first: the CPU VM's load keeps its guest busy and the scaler
	// growing it after the measurement, which would delay the passes that
	// decide for the other VM.
	for i, d := range slices.Backward(reactDims) {
		if got[i], err = h.react(ctx, d, waits[i]); err != nil {
			return nil, fmt.Errorf("%s: %w", d.key, err)
		}
	}
	return got, nil
}

// react applies d's load step to its VM after wait and follows the host's
// status until the VM has grown and its guest reports more online.
func (h *qemuHost) react(ctx context.Context, d dimension, wait time.Duration) (reaction, error) {
	name := d.vm.name
	if err := h.proc.pause(ctx, wait); err != nil {
		return reaction{}, err
	}
	st, err := h.api.Status(ctx)
	if err != nil {
		return reaction{}, err
	}
	vm, _ := vmNamed(st, name)
	size := d.size(vm.Size)
	r := reaction{from: d.online(st.Usage[name])}
	if err := h.api.LoadVM(ctx, name, d.load(st.Usage[name])); err != nil {
		return r, err
	}
	t0 := time.Now()
	idle := map[time.Time]bool{}
	err = h.watch(ctx, reactTimeout, func(st api.Status, at time.Time) (bool, error) {
		vm, _ := vmNamed(st, name)
		grown := d.size(vm.Size) > size
		dec := vm.LastDecision
		if dec != nil && dec.At.After(t0) && !grown {
			idle[dec.At] = true
		}
		if grown && r.recorded == 0 {
			r.recorded, r.grown = at.Sub(t0), vm.Size
			if dec != nil {
				r.decided, r.reason = dec.At.Sub(t0), dec.Reason
				r.overtaken = dec.Outcome != control.OutcomeGrown && dec.Outcome != control.OutcomeGrownPartial
			}
		}
		if online := d.online(st.Usage[name]); online > r.from && r.online == 0 {
			r.online, r.to = at.Sub(t0), online
		}
		return r.online > 0 && r.recorded > 0, nil
	})
	r.idlePasses = len(idle)
	if err != nil {
		return r, fmt.Errorf("waiting for vm %s to grow: %w", name, err)
	}
	return r, nil
}

// verdict says whether the goal was met and, when not, where the time
// went as far as the API shows it: p50 of each stage.
func verdict(online, floor, goal time.Duration, runs []reaction) string {
	if online < goal {
		return fmt.Sprintf("met (p50 %v)", round3(online))
	}
	waited := 0
	for _, r := range runs {
		if r.idlePasses > 0 {
			waited++
		}
	}
	return fmt.Sprintf("NOT met (p50 %v, the hypervisor alone %v); p50 of each stage: until the pass that grew the VM began %v "+
		"(in %d of %d runs an earlier pass after the step saw no need), resizing and recording %v, then the guest's next report %v",
		round3(online), round3(floor), round3(p50(runs, func(r reaction) time.Duration { return r.decided })), waited, len(runs),
		round3(p50(runs, func(r reaction) time.Duration { return r.recorded - r.decided })),
		round3(p50(runs, func(r reaction) time.Duration { return max(r.online-r.recorded, 0) })))
}

// stepWaits are how long each of n runs waits before its step: a moment
// drawn at random (seeded, so every invocation waits alike) in each n-th
// of period. Stepping right after the previous action would lock every
// step to one phase of the host's loop and of the guest's reports; spread
// over a whole period, the steps land at any moment, as real load does.
func stepWaits(n int, period time.Duration, seed uint64) []time.Duration {
	rng := rand.New(rand.NewPCG(seed, seed))
	waits := make([]time.Duration, n)
	for i := range waits {
		waits[i] = time.Duration((float64(i) + rng.Float64()) / float64(n) * float64(period))
	}
	return waits
}

func describeBounds(b model.Bounds) string {
	return fmt.Sprintf("vCPUs %s..%s in steps of %s, memory %s..%s in steps of %s",
		vcpus(b.Min.VCPUMilli), vcpus(b.Max.VCPUMilli), vcpus(b.Unit.VCPUMilli),
		model.FormatBytes(b.Min.MemoryBytes), model.FormatBytes(b.Max.MemoryBytes), model.FormatBytes(b.Unit.MemoryBytes))
}

func passes(n int) string {
	switch n {
	case 0:
		return ""
	case 1:
		return ", 1 pass before saw no need"
	}
	return fmt.Sprintf(", %d passes before saw no need", n)
}

// p50 is the nearest-rank median of one measurement over runs.
func p50[T any](runs []T, of func(T) time.Duration) time.Duration {
	ds := make([]time.Duration, len(runs))
	for i, r := range runs {
		ds[i] = of(r)
	}
	slices.Sort(ds)
	return percentile(ds, 50)
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func last[T any](xs []T) T {
	var zero T
	if len(xs) == 0 {
		return zero
	}
	return xs[len(xs)-1]
}
