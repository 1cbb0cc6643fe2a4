package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/vertigo-autoscaler/vertigo/host/api"
	"github.com/vertigo-autoscaler/vertigo/host/model"
	"github.com/vertigo-autoscaler/vertigo/sdk/schema"
)

const (
	migrateVMName = "migrate"
	// cpuQuota is the capability of a hypervisor that caps its VMs' CPU
	// time, migration threads included.
	cpuQuota = "hypervisor.cpu_quota"
	// minMigrateMemory is about the least the guest boots in.
	minMigrateMemory = 256 << 20
	// touchFraction of the guest's memory is touched before migrating, so
	// that the migration moves real pages.
	touchFraction = 0.5
	// downtimeTolerance is the goal: the downtime through Vertigo
	// within 10% of a raw QEMU migration's.
	downtimeTolerance = 0.10
)

// migrationRun is one live migration.
type migrationRun struct {
	total, downtime time.Duration
}

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	memFlag := fs.String("mem", "1GiB", "the VM's memory (its size and both its bounds)")
	runs := fs.Int("runs", 3, "migrations through the host, then as many raw ones, back and forth between two nodes")
	bin := fs.String("bin", "bin", "directory holding vertigo and the plugins, "+qemuBinary+" included")
	guest := fs.String("guest", "build/guest", "directory holding the guest image (make guest)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := positive(fs, "runs"); err != nil {
		return err
	}
	mem, err := schema.ParseBytes(*memFlag)
	if err != nil {
		return usageError(fmt.Sprintf("-mem: %v", err))
	}
	if mem < minMigrateMemory {
		return usageError(fmt.Sprintf("-mem: must be at least %s, got %s", model.FormatBytes(minMigrateMemory), model.FormatBytes(mem)))
	}
	s, err := newGuestSetup(*bin, *guest)
	if err != nil {
		return err
	}
	vm := benchVM{name: migrateVMName, bounds: model.Bounds{
		Min:  model.Size{VCPUMilli: 1000, MemoryBytes: mem},
		Max:  model.Size{VCPUMilli: 1000, MemoryBytes: mem},
		Unit: model.Size{VCPUMilli: 1000, MemoryBytes: 256 * mib},
	}}
	// Short: the VMs' unix sockets live under it, and their paths are
	// limited to 107 bytes.
	dir, err := os.MkdirTemp("", "vbm")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()

	fmt.Fprintf(stdout, "migrate: live migration of a guest with %s vCPU and %s, %.0f%% of it touched, between two nodes of this machine, "+
		"through the host (vertigo vm migrate) and then raw QEMU with the plugin's command line; max-bandwidth %s/s, downtime-limit %v for both; "+
		"total: from the request (raw: from starting the destination) until the source is gone, downtime: from the source's pause until the destination runs "+
		"(under TCG both pause the source for the whole copy: QEMU 7.2 loses writes in a live TCG migration)\n",
		vcpus(vm.bounds.Min.VCPUMilli), model.FormatBytes(mem), touchFraction*100, model.FormatBytes(migrationBandwidth), migrationDowntime)
	through, g, touch, err := migrateThroughHost(ctx, s, dir, vm, *runs, stdout, stderr)
	if err != nil {
		return err
	}
	raw, err := migrateRaw(ctx, g, filepath.Join(dir, "raw"), touch, *runs, stdout)
	if err != nil {
		return fmt.Errorf("raw QEMU: %w", err)
	}

	total := func(r migrationRun) time.Duration { return r.total }
	downtime := func(r migrationRun) time.Duration { return r.downtime }
	vTotal, vDown := p50(through, total), p50(through, downtime)
	rTotal, rDown := p50(raw, total), p50(raw, downtime)
	row(stdout, "p50 through the host", "total %v, downtime %v", round3(vTotal), round3(vDown))
	row(stdout, "p50 raw QEMU", "total %v, downtime %v", round3(rTotal), round3(rDown))
	row(stdout, fmt.Sprintf("goal: downtime within %.0f%% of raw", downtimeTolerance*100), "%s", downtimeVerdict(vDown, rDown))

	var f figures
	f.add("vertigo_total_ms", millis(vTotal), 0)
	f.add("vertigo_downtime_ms", millis(vDown), 0)
	f.add("raw_total_ms", millis(rTotal), 0)
	f.add("raw_downtime_ms", millis(rDown), 0)
	f.add("mem_bytes", float64(mem), 0)
	f.addInt("runs", *runs)
	fmt.Fprintln(stdout, f)
	return nil
}

// downtimeVerdict compares the downtime through Vertigo with raw QEMU's.
func downtimeVerdict(vertigo, raw time.Duration) string {
	met := "met"
	if float64(vertigo) > (1+downtimeTolerance)*float64(raw) {
		met = "NOT met"
	}
	diff := "no raw downtime to compare with"
	if raw > 0 {
		diff = fmt.Sprintf("%+.0f%%", (float64(vertigo)/float64(raw)-1)*100)
	}
	return fmt.Sprintf("%s (%v against %v, %s)", met, round3(vertigo), round3(raw), diff)
}

// migrateThroughHost runs a host with vm, touches its guest's memory and
// migrates it runs times. It returns the migrations, the VM's command line
// as the plugin booted it, and how many bytes were touched.
func migrateThroughHost(ctx context.Context, s guestSetup, dir string, vm benchVM, runs int, stdout, stderr io.Writer) (_ []migrationRun, _ rawGuest, touch uint64, err error) {
	h, err := startQEMUHost(ctx, s, dir, []benchVM{vm}, stderr)
	if err != nil {
		return nil, rawGuest{}, 0, err
	}
	defer func() { err = errors.Join(err, h.close()) }()
	// The instance as booted: a migration's destination records
	// -incoming too.
	g, err := recordedGuest(filepath.Join(h.runDir, vm.name+"@"+benchNodes[0]))
	if err != nil {
		return nil, rawGuest{}, 0, err
	}
	if touch, err = h.touch(ctx, vm.name); err != nil {
		return nil, rawGuest{}, 0, err
	}
	if capped, err := h.pluginCan(ctx, qemuBinary, cpuQuota); err != nil {
		return nil, rawGuest{}, 0, err
	} else if capped {
		fmt.Fprintf(stdout, "  %s caps the CPU time of each QEMU to its vCPUs (%s); raw QEMU runs uncapped\n", qemuBinary, cpuQuota)
	}
	var got []migrationRun
	for i := range runs {
		to := benchNodes[(i+1)%len(benchNodes)]
		ctx, cancel := context.WithTimeout(ctx, migrateTimeout)
		var last api.Migration
		start := time.Now()
		err := h.api.MigrateVM(ctx, vm.name, to, func(m api.Migration) { last = m })
		took := time.Since(start)
		cancel()
		if err != nil {
			return nil, rawGuest{}, 0, fmt.Errorf("migration %d to %s: %w%s", i+1, to, err, h.proc.logTail())
		}
		r := migrationRun{total: took, downtime: time.Duration(last.DowntimeNanos)}
		row(stdout, fmt.Sprintf("run %d through the host, to %s", i+1, to), "total %v (the plugin's part %v), downtime %v, %s moved",
			round3(r.total), round3(time.Duration(last.ElapsedNanos)), round3(r.downtime), model.FormatBytes(last.TransferredBytes))
		got = append(got, r)
	}
	return got, g, touch, nil
}

// touch has the VM's guest touch touchFraction of its memory and waits
// until it reports it used; it returns the bytes touched.
func (h *qemuHost) touch(ctx context.Context, name string) (uint64, error) {
	st, err := h.api.Status(ctx)
	if err != nil {
		return 0, err
	}
	before := st.Usage[name]
	n := uint64(touchFraction * float64(before.OnlineMemory))
	if err := h.api.LoadVM(ctx, name, api.LoadRequest{MemoryBytes: n, DurationNs: int64(loadFor)}); err != nil {
		return 0, err
	}
	err = h.watch(ctx, guestBoot, func(st api.Status, _ time.Time) (bool, error) {
		return st.Usage[name].MemoryUsed >= before.MemoryUsed+touched(n), nil
	})
	if err != nil {
		return 0, fmt.Errorf("waiting for vm %s to use %s more: %w", name, model.FormatBytes(touched(n)), err)
	}
	return n, nil
}

// pluginCan says whether the named plugin has the capability.
func (h *qemuHost) pluginCan(ctx context.Context, plugin, capability string) (bool, error) {
	st, err := h.api.Status(ctx)
	if err != nil {
		return false, err
	}
	for _, p := range st.Plugins {
		if p.Name == plugin {
			return slices.Contains(p.Capabilities, capability), nil
		}
	}
	return false, fmt.Errorf("the host does not list plugin %s", plugin)
}

// migrateRaw boots g under dir, touches n bytes of its memory and
// migrates it runs times, each time to a new QEMU.
func migrateRaw(ctx context.Context, g rawGuest, dir string, n uint64, runs int, stdout io.Writer) (_ []migrationRun, err error) {
	q, err := startRawQEMU(ctx, g, filepath.Join(dir, "0"), false)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, q.stop()) }()
	if err := q.touch(ctx, n); err != nil {
		return nil, err
	}
	var got []migrationRun
	for i := range runs {
		dst, r, err := q.migrateTo(ctx, g, filepath.Join(dir, strconv.Itoa(i+1)))
		if dst != nil {
			q = dst
		}
		if err != nil {
			return nil, fmt.Errorf("migration %d: %w", i+1, err)
		}
		row(stdout, fmt.Sprintf("run %d raw QEMU", i+1), "total %v, downtime %v", round3(r.total), round3(r.downtime))
		got = append(got, r)
	}
	return got, nil
}
