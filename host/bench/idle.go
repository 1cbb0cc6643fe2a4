package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vertigo-autoscaler/vertigo/host/api"
	"github.com/vertigo-autoscaler/vertigo/host/internal/procfs"
	"github.com/vertigo-autoscaler/vertigo/host/model"
)

const (
	hostBinary    = "vertigo"
	loopInterval  = 5 * time.Second
	readyTimeout  = 30 * time.Second
	settle        = 2 * time.Second
	stopTimeout   = 10 * time.Second
	rssEvery      = 500 * time.Millisecond
	readyEvery    = 100 * time.Millisecond
	procRoot      = "/proc"
	idleWatermark = 0.9
)

// idleNode holds vmsPerNode() VMs of the default bounds' minimum size.
var idleNode = model.Size{VCPUMilli: 8000, MemoryBytes: 16 * gib}

// footprint is what a host and its plugins cost while idle.
type footprint struct {
	// RSS is the mean over the window of the tree's summed RSS, in bytes.
	RSS    float64
	CPUPct float64 // of one core
	Window time.Duration
	// Procs is the last sample, for the per-process breakdown.
	Procs []procSample
}

func (f footprint) String() string {
	parts := make([]string, len(f.Procs))
	for i, p := range f.Procs {
		parts[i] = fmt.Sprintf("%s %s", p.Name, model.FormatBytes(p.RSS))
	}
	return fmt.Sprintf("RSS %.1fMiB mean (last: %s), CPU %.2f%% of a core over %.1fs",
		f.RSS/float64(mib), strings.Join(parts, ", "), f.CPUPct, f.Window.Seconds())
}

func idle(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	vms := fs.Int("vms", 100, "VMs declared")
	window := fs.Duration("for", 20*time.Second, "sampling window")
	bin := fs.String("bin", "bin", "directory holding vertigo, vertigo-scaler and vertigo-placement")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := positive(fs, "vms"); err != nil {
		return err
	}
	if *window <= 0 {
		return usageError(fmt.Sprintf("-for: must be > 0, got %v", *window))
	}
	binDir, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	hz := procfs.ClockTicks()

	fmt.Fprintf(stdout, "idle: %s run, loop every %v, settle %v, window %v, %g clock ticks/s\n",
		filepath.Join(*bin, hostBinary), loopInterval, settle, *window, hz)
	base, err := idleFootprint(ctx, binDir, 0, *window, hz)
	if err != nil {
		return fmt.Errorf("baseline with 0 VMs: %w", err)
	}
	row(stdout, "baseline, 0 VMs", "%v", base)
	loaded, err := idleFootprint(ctx, binDir, *vms, *window, hz)
	if err != nil {
		return fmt.Errorf("with %d VMs: %w", *vms, err)
	}
	row(stdout, fmt.Sprintf("%d VMs, nodes: %d", *vms, nodesFor(*vms)), "%v", loaded)

	var f figures
	f.addInt("vms", *vms)
	f.add("rss_mib", loaded.RSS/float64(mib), 1)
	f.add("cpu_pct", loaded.CPUPct, 2)
	f.add("baseline_rss_mib", base.RSS/float64(mib), 1)
	f.add("baseline_cpu_pct", base.CPUPct, 2)
	f.add("window_s", loaded.Window.Seconds(), 1)
	fmt.Fprintln(stdout, f)
	return nil
}

// idleFootprint runs a host with vms VMs declared until it is healthy, lets
// it settle, measures it over window and stops it.
func idleFootprint(ctx context.Context, bin string, vms int, window time.Duration, hz float64) (_ footprint, err error) {
	dir, err := os.MkdirTemp("", "vertigo-bench-idle-")
	if err != nil {
		return footprint{}, err
	}
	defer os.RemoveAll(dir)
	// Port 0: the host picks a free port and records it, so no other
	// process can take it between our choice and its bind.
	addr := "127.0.0.1:0"
	cfg := filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(cfg, []byte(idleConfig(bin, filepath.Join(dir, "state"), addr, vms)), 0o600); err != nil {
		return footprint{}, err
	}
	h, err := startHost(filepath.Join(bin, hostBinary), cfg, filepath.Join(dir, "host.log"))
	if err != nil {
		return footprint{}, err
	}
	defer func() { err = errors.Join(err, h.stop()) }()

	if _, err := h.waitHealthy(ctx, api.AddressPath(filepath.Join(dir, "state"))); err != nil {
		return footprint{}, err
	}
	if err := h.pause(ctx, settle); err != nil {
		return footprint{}, err
	}
	return h.measure(ctx, window, hz)
}

// vmsPerNode is how many VMs of the minimum size stay under an idle node's
// watermark in both dimensions.
func vmsPerNode() int {
	vm := defaultBounds.Min
	return int(min(
		idleWatermark*float64(idleNode.VCPUMilli)/float64(vm.VCPUMilli),
		idleWatermark*float64(idleNode.MemoryBytes)/float64(vm.MemoryBytes),
	))
}

func nodesFor(vms int) int { return max(1, (vms+vmsPerNode()-1)/vmsPerNode()) }

// idleConfig is a host configuration with the scaler and placement plugins
// of bin, the API on addr, and vms VMs of the default bounds, unpinned, on
// as many nodes as they need.
func idleConfig(bin, stateDir, addr string, vms int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir = %s\n\napi {\n  address = %s\n}\n\nloop {\n  interval = %s\n}\n",
		hclString(stateDir), hclString(addr), hclString(loopInterval.String()))
	for _, p := range []struct{ name, kind string }{{scalerBinary, "scaler"}, {placementBinary, "placement"}} {
		fmt.Fprintf(&b, "\nplugin %s {\n  kind = %s\n  path = %s\n}\n",
			hclString(p.name), hclString(p.kind), hclString(filepath.Join(bin, p.name)))
	}
	for i := range nodesFor(vms) {
		fmt.Fprintf(&b, "\nnode \"node-%03d\" {\n  vcpus     = %s\n  memory    = %d\n  watermark = %g\n}\n",
			i, vcpus(idleNode.VCPUMilli), idleNode.MemoryBytes, idleWatermark)
	}
	bo := defaultBounds
	for i := range vms {
		fmt.Fprintf(&b, "\nvm \"pg-%04d\" {\n  min_vcpus   = %s\n  max_vcpus   = %s\n  unit_vcpus  = %s\n"+
			"  min_memory  = %d\n  max_memory  = %d\n  unit_memory = %d\n}\n",
			i, vcpus(bo.Min.VCPUMilli), vcpus(bo.Max.VCPUMilli), vcpus(bo.Unit.VCPUMilli),
			bo.Min.MemoryBytes, bo.Max.MemoryBytes, bo.Unit.MemoryBytes)
	}
	return b.String()
}

func vcpus(milli int64) string { return strconv.FormatFloat(float64(milli)/1000, 'f', -1, 64) }

// hclString quotes s as an HCL string literal: Go's escapes, plus doubling
// the characters that would start a template sequence.
func hclString(s string) string {
	q := strconv.Quote(s)
	q = strings.ReplaceAll(q, "${", "$${")
	return strings.ReplaceAll(q, "%{", "%%{")
}

// hostProcess is a `vertigo run` subprocess.
type hostProcess struct {
	cmd     *exec.Cmd
	log     string
	done    chan struct{} // closed once the process has been waited for
	waitErr error
	// exitReported is set once an early exit has been returned as an
	// error, so that stop does not report it twice.
	exitReported bool
}

func startHost(path, config, logPath string) (*hostProcess, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer log.Close() // the child holds its own descriptor
	cmd := exec.Command(path, "run", "-config", config)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	h := &hostProcess{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		h.waitErr = cmd.Wait()
		close(h.done)
	}()
	return h, nil
}

// exited describes a host that ended before it was told to.
func (h *hostProcess) exited() error {
	h.exitReported = true
	return fmt.Errorf("host exited early (%v)%s", h.waitErr, h.logTail())
}

// waitHealthy polls url until it answers 200, the host exits, or
// readyTimeout passes.
// waitHealthy waits for the host to record its API's address at
// addrFile and for /healthz there to answer 200; it returns the address.
func (h *hostProcess) waitHealthy(ctx context.Context, addrFile string) (string, error) {
	client := &http.Client{Timeout: time.Second}
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	poll := time.NewTicker(readyEvery)
	defer poll.Stop()
	for {
		var resp *http.Response
		addr, err := api.ReadAddress(addrFile)
		if err == nil {
			if resp, err = client.Get("http://" + addr + "/healthz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return addr, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-h.done:
			return "", h.exited()
		case <-deadline.C:
			return "", fmt.Errorf("the host's API (address in %s) did not answer 200 within %v (last: %s)%s", addrFile, readyTimeout, describe(resp, err), h.logTail())
		case <-poll.C:
		}
	}
}

func describe(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return resp.Status
}

// pause waits d unless ctx ends or the host exits first.
func (h *hostProcess) pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-h.done:
		return h.exited()
	case <-t.C:
		return nil
	}
}

// measure samples RSS every rssEvery over window and CPU time at both ends.
func (h *hostProcess) measure(ctx context.Context, window time.Duration, hz float64) (footprint, error) {
	pid := h.cmd.Process.Pid
	first, err := sampleTree(procRoot, pid)
	if err != nil {
		return footprint{}, err
	}
	start := time.Now()
	rss := []uint64{totalRSS(first)}
	end := time.NewTimer(window)
	defer end.Stop()
	tick := time.NewTicker(rssEvery)
	defer tick.Stop()
	for over := false; !over; {
		select {
		case <-ctx.Done():
			return footprint{}, ctx.Err()
		case <-h.done:
			return footprint{}, h.exited()
		case <-tick.C:
			s, err := sampleTree(procRoot, pid)
			if err != nil {
				return footprint{}, err
			}
			rss = append(rss, totalRSS(s))
		case <-end.C:
			over = true
		}
	}
	last, err := sampleTree(procRoot, pid)
	if err != nil {
		return footprint{}, err
	}
	took := time.Since(start)
	rss = append(rss, totalRSS(last))
	return footprint{
		RSS:    mean(rss),
		CPUPct: float64(cpuTicksBetween(first, last)) / hz / took.Seconds() * 100,
		Window: took,
		Procs:  last,
	}, nil
}

func totalRSS(procs []procSample) uint64 {
	var sum uint64
	for _, p := range procs {
		sum += p.RSS
	}
	return sum
}

func mean(xs []uint64) float64 {
	var sum float64
	for _, x := range xs {
		sum += float64(x)
	}
	return sum / float64(len(xs))
}

// cpuTicksBetween is the CPU time the processes of last used since first; a
// process that started in between (a restarted plugin) counts from zero.
func cpuTicksBetween(first, last []procSample) uint64 {
	before := make(map[int]uint64, len(first))
	for _, p := range first {
		before[p.PID] = p.CPUTicks
	}
	var used uint64
	for _, p := range last {
		if b := before[p.PID]; p.CPUTicks >= b {
			used += p.CPUTicks - b
		}
	}
	return used
}

// stop sends SIGTERM and waits; a host that ignores it is killed.
func (h *hostProcess) stop() error {
	if h.exitReported {
		return nil
	}
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-h.done:
	case <-t.C:
		_ = h.cmd.Process.Kill()
		<-h.done
		return fmt.Errorf("host still running %v after SIGTERM: killed%s", stopTimeout, h.logTail())
	}
	if h.waitErr != nil {
		return fmt.Errorf("host stopped with %v%s", h.waitErr, h.logTail())
	}
	return nil
}

// logTail is the end of the host's log, for errors.
func (h *hostProcess) logTail() string {
	const keep = 15
	raw, err := os.ReadFile(h.log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	return "\nhost log (last lines):\n  " + strings.Join(lines[max(0, len(lines)-keep):], "\n  ")
}
