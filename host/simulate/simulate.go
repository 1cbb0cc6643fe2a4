// Package simulate implements `vertigo simulate`: it replays per-VM demand
// from a trace through the real scaler and placement plugins, out of
// process as in production, driven by the host's own control loop on an
// injected clock, and compares scaler policies side by side. The VMs are a
// simulation (fleet.go), never a hypervisor plugin `vertigo run` could load.
package simulate

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vertigo-autoscaler/vertigo/host/model"
	"github.com/vertigo-autoscaler/vertigo/sdk/schema"
)

// Usage is the command's help.
const Usage = `usage: vertigo simulate --trace FILE [flags]

Replays per-VM demand from a trace through the real scaler and placement
plugins (out of process) and the host's control loop, on an injected clock,
once per policy: default, neon, static-peak (the scaler's "peak" mode) and
vpa (its "percentile" mode), each with its own plugin processes, in parallel.
The VMs are simulated: a resize or a migration takes effect at once and a
guest always consents.

Trace: CSV, plain or gzip, header vm_id,t_seconds,<cpu_cores_used|cpu_pct>,
mem_bytes_used[,ignored...], rows grouped by VM in time order. A row is the
average over the time since the VM's previous row. It is resampled onto
steps of --step: a step's demand is the time-weighted mean of the rows that
cover it. A missing or zero memory reading holds the previous one; a VM
with no memory reading at all keeps --fixed-memory.

What the scaler sees, for each step in its window (the guest's metrics):
  load1                  = cores demanded over the step
  cpu PSI some avg10     = 100*(demand - vCPUs)/demand when demand > vCPUs, else 0
  memory used            = min(memory demanded, memory)
  memory PSI some avg10  = 100*(demanded - memory)/demanded when it exceeds memory
where vCPUs and memory are what the VM had during the step. No pressure
events, no cache working set.

Measured per policy (a sample = one VM over one step): vCPU- and GiB-hours
allocated, vCPU-hours demanded, the fraction of samples whose CPU demand
exceeded the vCPUs (and by how much: mean and p99 over those samples), the
fraction short of memory, resizes per VM-hour, migrations, growths placement
denied or granted in part. A step's demand is an average: within it, load
peaked higher, so every under-provisioning figure is a lower bound.

flags:
`

// UsageError is a mistake on the command line.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return "simulate: " + e.Msg }

// config is the parsed command line.
type config struct {
	trace, csv, plots string
	plotVMs           []string
	vms               int
	parse             ParseOptions
	step              time.Duration
	policies          []Policy
	progress          bool
	opts              Options
}

// Main runs `vertigo simulate ARGS...`. The comparison goes to stdout and
// ends with one key=value line per policy; progress and the time the
// replay took go to stderr, so stdout is the same for the same input.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseArgs(args, stdout)
	if err != nil || cfg == nil {
		return err
	}
	return run(ctx, cfg, stdout, stderr)
}

func parseArgs(args []string, stdout io.Writer) (*config, error) {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := &config{}
	fs.StringVar(&c.trace, "trace", "", "the trace `FILE` (required)")
	fs.Float64Var(&c.parse.VMMaxVCPUs, "vm-max-vcpus", 0, "cores that cpu_pct 100 stands for (required for a cpu_pct trace)")
	fs.IntVar(&c.vms, "vms", 0, "replay only the first `N` VMs of the trace (0: all)")
	fs.DurationVar(&c.step, "step", 5*time.Minute, "time between decisions, and the grid the trace is resampled onto")
	fs.IntVar(&c.opts.Window, "window", 12, "steps of metrics each decision sees (the host's default is 12 samples)")
	fs.IntVar(&c.opts.Nodes, "nodes", 4, "nodes in the simulated fleet")
	nodeVCPUs := fs.Float64("node-vcpus", 64, "vCPUs of each node")
	nodeMem := fs.String("node-memory", "256GiB", "memory of each node")
	fs.Float64Var(&c.opts.Watermark, "watermark", 0.9, "fraction of a node above which placement plans migrations")
	minV := fs.Float64("min-vcpus", 0.25, "every VM's minimum vCPUs (and its size at the start)")
	maxV := fs.Float64("max-vcpus", 16, "every VM's maximum vCPUs")
	unitV := fs.Float64("unit-vcpus", 0.25, "vCPU granularity")
	minM := fs.String("min-memory", "256MiB", "every VM's minimum memory (and its size at the start)")
	maxM := fs.String("max-memory", "64GiB", "every VM's maximum memory")
	unitM := fs.String("unit-memory", "256MiB", "memory granularity")
	fixedM := fs.String("fixed-memory", "4GiB", "memory of a VM the trace gives no memory for (pinned)")
	policies := fs.String("policies", "default,neon,static-peak,vpa", "policies to compare, comma-separated")
	fs.StringVar(&c.csv, "csv", "", "also write the table as CSV to `FILE`")
	fs.StringVar(&c.plots, "plots", "simulate-plots", "write SVG plots into `DIR` (\"\": none)")
	plotVMs := fs.String("plot-vms", "", "VMs to plot, comma-separated (default: the three that demand the most CPU)")
	fs.BoolVar(&c.progress, "progress", false, "show a progress bar on stderr even when it is not a terminal")
	fs.StringVar(&c.opts.ScalerBin, "scaler-bin", defaultBin("vertigo-scaler"), "the scaler plugin binary")
	fs.StringVar(&c.opts.PlacementBin, "placement-bin", defaultBin("vertigo-placement"), "the placement plugin binary")
	fs.StringVar(&c.opts.Placement, "placement-config", "{}", "the placement plugin's configuration, JSON")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, Usage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil, nil
		}
		return nil, &UsageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, &UsageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	var errs []string
	check := func(ok bool, format string, a ...any) {
		if !ok {
			errs = append(errs, fmt.Sprintf(format, a...))
		}
	}
	check(c.trace != "", "--trace: required")
	check(c.vms >= 0, "--vms: must be >= 0, got %d", c.vms)
	check(c.opts.Window >= 1, "--window: must be >= 1, got %d", c.opts.Window)
	check(c.opts.Nodes >= 1, "--nodes: must be >= 1, got %d", c.opts.Nodes)
	check(c.opts.Watermark > 0 && c.opts.Watermark <= 1, "--watermark: must be in (0,1], got %g", c.opts.Watermark)
	milli := func(name string, v float64) int64 {
		check(v > 0 && !math.IsInf(v, 0), "--%s: must be > 0, got %g", name, v)
		return int64(math.Round(v * 1000))
	}
	bytes := func(name, v string) uint64 {
		b, err := schema.ParseBytes(v)
		check(err == nil && b > 0, "--%s: want a size such as 4GiB, got %q", name, v)
		return b
	}
	c.opts.Node = model.Size{VCPUMilli: milli("node-vcpus", *nodeVCPUs), MemoryBytes: bytes("node-memory", *nodeMem)}
	c.opts.Bounds = model.Bounds{
		Min:  model.Size{VCPUMilli: milli("min-vcpus", *minV), MemoryBytes: bytes("min-memory", *minM)},
		Max:  model.Size{VCPUMilli: milli("max-vcpus", *maxV), MemoryBytes: bytes("max-memory", *maxM)},
		Unit: model.Size{VCPUMilli: milli("unit-vcpus", *unitV), MemoryBytes: bytes("unit-memory", *unitM)},
	}
	c.opts.FixedMemory = bytes("fixed-memory", *fixedM)
	b := c.opts.Bounds
	check(b.Min.VCPUMilli <= b.Max.VCPUMilli, "--min-vcpus: %g exceeds --max-vcpus %g", *minV, *maxV)
	check(b.Min.MemoryBytes <= b.Max.MemoryBytes, "--min-memory: %s exceeds --max-memory %s", *minM, *maxM)
	for _, name := range strings.Split(*policies, ",") {
		i := slices.IndexFunc(Policies, func(p Policy) bool { return p.Name == strings.TrimSpace(name) })
		check(i >= 0, "--policies: unknown policy %q (want default, neon, static-peak or vpa)", name)
		if i >= 0 && !slices.Contains(c.policies, Policies[i]) {
			c.policies = append(c.policies, Policies[i])
		}
	}
	if *plotVMs != "" {
		c.plotVMs = strings.Split(*plotVMs, ",")
	}
	if len(errs) > 0 {
		return nil, &UsageError{strings.Join(errs, "; ")}
	}
	return c, nil
}

// defaultBin is a plugin binary next to the running executable when there
// is one, else in ./bin.
func defaultBin(name string) string {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return filepath.Join("bin", name)
}

func run(ctx context.Context, c *config, stdout, stderr io.Writer) error {
	tr, err := OpenTrace(c.trace, c.parse)
	if err != nil {
		return err
	}
	if c.vms > 0 && c.vms < len(tr.VMs) {
		tr.VMs = tr.VMs[:c.vms]
	}
	g, err := NewGrid(tr, c.step)
	if err != nil {
		return err
	}
	plotted, err := plotIndexes(g, c.plotVMs)
	if err != nil {
		return err
	}
	c.opts.Logs = stderr
	describe(stdout, c, tr, g)

	start := time.Now()
	bar := newProgress(stderr, c.progress, len(c.policies)*g.Steps)
	results := make([]Result, len(c.policies))
	errs := make([]error, len(c.policies))
	var wg sync.WaitGroup
	for i, p := range c.policies {
		wg.Go(func() {
			f, err := replay(ctx, g, p, c.opts, bar.step)
			if err != nil {
				errs[i] = err
				return
			}
			results[i] = summarize(g, p.Name, f)
		})
	}
	wg.Wait()
	bar.done()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	elapsed := time.Since(start)
	decisions := 0
	for _, s := range g.VMs {
		for _, p := range s.Present {
			if p {
				decisions++
			}
		}
	}
	fmt.Fprintf(stderr, "replayed %d policies x %d VMs x %d steps in %.1fs: %d decisions, %.0f per second\n",
		len(c.policies), len(g.VMs), g.Steps, elapsed.Seconds(), decisions*len(c.policies), float64(decisions*len(c.policies))/elapsed.Seconds())
	host, plugins := cpuTimes()
	fmt.Fprintf(stderr, "elapsed_s=%.1f cpu_host_s=%.1f cpu_plugins_s=%.1f policies=%d vms=%d steps=%d\n",
		elapsed.Seconds(), host.Seconds(), plugins.Seconds(), len(c.policies), len(g.VMs), g.Steps)

	fmt.Fprintln(stdout)
	writeTable(stdout, results)
	fmt.Fprintln(stdout)
	if c.csv != "" {
		if err := writeFile(c.csv, func(w io.Writer) error { return writeCSV(w, results) }); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "table written to %s\n", c.csv)
	}
	if c.plots != "" {
		files, err := writePlots(c.plots, g, results, plotted)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "plots written to %s: %s\n", c.plots, strings.Join(files, ", "))
	}
	writeKV(stdout, results)
	return nil
}

// describe says what is replayed and how, so a table never stands without
// its assumptions.
func describe(w io.Writer, c *config, tr *Trace, g *Grid) {
	b, o := c.opts.Bounds, c.opts
	memory := "memory from the trace (a missing or zero reading holds the previous one)"
	if !g.HasMemory() {
		memory = "no memory in the trace: every VM's memory is pinned at " + model.FormatBytes(o.FixedMemory)
	}
	cpu := "cpu_cores_used"
	if tr.CPUColumn == columnPercent {
		cpu = fmt.Sprintf("cpu_pct, 100%% = %g vCPUs", c.parse.VMMaxVCPUs)
	}
	fmt.Fprintf(w, "simulation (simulated VMs; real scaler and placement plugins): %s\n", filepath.Base(c.trace))
	fmt.Fprintf(w, "  trace:   %d VMs, %s; %s\n", len(g.VMs), cpu, memory)
	fmt.Fprintf(w, "  replay:  %d steps of %s (%.1f days); each decision sees the last %d steps\n",
		g.Steps, g.Step, float64(g.Steps)*g.Step.Hours()/24, o.Window)
	mem := fmt.Sprintf("%s-%s by %s", model.FormatBytes(b.Min.MemoryBytes), model.FormatBytes(b.Max.MemoryBytes), model.FormatBytes(b.Unit.MemoryBytes))
	if !g.HasMemory() {
		mem = model.FormatBytes(o.FixedMemory) + " pinned"
	}
	fmt.Fprintf(w, "  fleet:   %d nodes of %s, watermark %g; every VM %s-%s vCPU by %s, %s, starting at its minimum\n",
		o.Nodes, o.Node, o.Watermark, vcpus(b.Min), vcpus(b.Max), vcpus(b.Unit), mem)
	fmt.Fprintln(w, "  metrics: load1 = cores demanded over the step; PSI = share of demand beyond the vCPUs (memory) the VM had")
	fmt.Fprintln(w, "  caveat:  a step's demand is an average; load peaked higher within it, so under-provisioning is a lower bound")
}

func vcpus(s model.Size) string { return fmt.Sprintf("%g", float64(s.VCPUMilli)/1000) }

// writeFile creates path, and its directory if need be, with what write
// writes.
func writeFile(path string, write func(io.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
