package bench

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/api"
	"github.com/vertigo-autoscaler/vertigo/host/config"
	"github.com/vertigo-autoscaler/vertigo/host/model"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

func TestQEMUHostConfigIsValidAndRunsEveryVMInQEMU(t *testing.T) {
	s := guestSetup{bin: "/opt/vertigo ${odd}/bin", kernel: "/g/vm\"linux", initrd: "/g/initrd %{x}"}
	big := benchVM{name: "big", bounds: model.Bounds{
		Min:  model.Size{VCPUMilli: 1000, MemoryBytes: 20 * gib},
		Max:  model.Size{VCPUMilli: 12000, MemoryBytes: 20 * gib},
		Unit: model.Size{VCPUMilli: 1000, MemoryBytes: 256 * mib},
	}}
	vms := []benchVM{reactCPU, reactMem, big}
	src := qemuHostConfig(s, "/tmp/vb1", "127.0.0.1:40123", vms)
	cfg, diags := config.Parse([]byte(src), "qemu.hcl")
	require.False(t, diags.HasErrors(), "%s\n%s", config.Format(diags), src)

	require.Equal(t, "/tmp/vb1/state", cfg.StateDir)
	require.Equal(t, "127.0.0.1:40123", cfg.API.Address)
	require.Equal(t, loopInterval, cfg.Loop.Interval)
	require.Equal(t, uint64(migrationBandwidth), cfg.Loop.MigrationBandwidth, "raw QEMU migrates with the same bandwidth")
	require.Equal(t, migrationDowntime, cfg.Loop.MigrationDowntime, "and the same downtime limit")

	hv := cfg.Plugin(pb.Kind_KIND_HYPERVISOR)
	require.NotNil(t, hv)
	require.Equal(t, qemuBinary, hv.Name)
	require.Equal(t, "/opt/vertigo ${odd}/bin/vertigo-qemu", hv.Path)
	attrs, diags := hv.Body.JustAttributes()
	require.False(t, diags.HasErrors(), "%s", diags)
	got := map[string]string{}
	for name, a := range attrs {
		v, diags := a.Expr.Value(nil)
		require.False(t, diags.HasErrors(), "%s: %s", name, diags)
		got[name] = v.AsString()
	}
	require.Equal(t, map[string]string{
		"run_dir": "/tmp/vb1/qemu", "kernel": s.kernel, "initrd": s.initrd, "nodes": strings.Join(benchNodes, ","),
	}, got)

	var nodes []string
	for _, n := range cfg.Nodes {
		nodes = append(nodes, n.Name)
		for _, v := range vms {
			// Room for a VM at its largest and for a migration's twin.
			twice := model.Size{VCPUMilli: 2 * v.bounds.Max.VCPUMilli, MemoryBytes: 2 * v.bounds.Max.MemoryBytes}
			require.True(t, twice.Fits(n.Capacity), "%s on %s", v.name, n.Name)
		}
	}
	require.Equal(t, benchNodes, nodes)
	require.Len(t, cfg.VMs, len(vms))
	for i, v := range cfg.VMs {
		require.Equal(t, vms[i].name, v.Name)
		require.Equal(t, vms[i].bounds, v.Bounds)
		require.Equal(t, vms[i].bounds.Min, v.Initial)
		require.Equal(t, benchNodes[0], v.Node)
		require.Equal(t, vms[i].spec().GetNode(), v.Node, "the floor's VMs start where the host's do")
	}
}

func TestPressureLoadCrossesTheLineAndLeavesRoom(t *testing.T) {
	for _, u := range []struct{ total, used uint64 }{
		{400 * mib, 30 * mib}, {480 * mib, 40 * mib}, {2 * gib, 900 * mib}, {8 * gib, 100 * mib},
	} {
		total, used := float64(u.total), float64(u.used)
		n := float64(pressureLoad(reportOf(u.total, u.used)))
		line := agentPressure * (total - agentHeadroom)
		require.Greater(t, used+n, line+0.9*pressureMargin*total, "%s used of %s", model.FormatBytes(u.used), model.FormatBytes(u.total))
		require.Less(t, used+n, total-agentHeadroom/2, "%s used of %s: the guest keeps room", model.FormatBytes(u.used), model.FormatBytes(u.total))
	}
	// A guest already past its line still gets a step.
	require.Equal(t, uint64(pressureMargin*float64(512*mib)), pressureLoad(reportOf(512*mib, 500*mib)))
}

func TestStepWaitsDrawOneMomentInEachSliceOfThePeriod(t *testing.T) {
	for n := 1; n <= 7; n++ {
		waits := stepWaits(n, loopInterval, 3)
		require.Len(t, waits, n)
		for i, w := range waits {
			require.GreaterOrEqual(t, w, time.Duration(i)*loopInterval/time.Duration(n), "run %d of %d", i, n)
			require.Less(t, w, time.Duration(i+1)*loopInterval/time.Duration(n), "run %d of %d", i, n)
		}
		require.Equal(t, waits, stepWaits(n, loopInterval, 3), "seeded: every invocation waits alike")
	}
	require.NotEqual(t, stepWaits(5, loopInterval, 0), stepWaits(5, loopInterval, 1), "each dimension draws its own")
}

func TestVerdictNamesWhereTheTimeWent(t *testing.T) {
	runs := []reaction{
		{decided: 7e9, recorded: 8e9, online: 8.2e9, idlePasses: 1},
		{decided: 6e9, recorded: 7.5e9, online: 7.4e9},
		{decided: 2e9, recorded: 3e9, online: 3.5e9, idlePasses: 2},
	}
	online := p50(runs, func(r reaction) time.Duration { return r.online })
	v := verdict(online, 900*time.Millisecond, time.Second, runs)
	require.Equal(t, "NOT met (p50 7.4s, the hypervisor alone 900ms); p50 of each stage: until the pass that grew the VM began 6s "+
		"(in 2 of 3 runs an earlier pass after the step saw no need), resizing and recording 1s, then the guest's next report 200ms", v)
	require.Equal(t, "met (p50 800ms)", verdict(800*time.Millisecond, 500*time.Millisecond, time.Second, runs))
}

func TestReactAndMigrateUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"react", "-runs", "0"}, "-runs: must be > 0, got 0"},
		{[]string{"react", "-mem", "1GiB"}, "flag provided but not defined: -mem"},
		{[]string{"migrate", "-runs", "-2"}, "-runs: must be > 0, got -2"},
		{[]string{"migrate", "-mem", "lots"}, "-mem: "},
		{[]string{"migrate", "-mem", "64MiB"}, "-mem: must be at least 256MiB, got 64MiB"},
	} {
		var out, errOut bytes.Buffer
		err := Main(context.Background(), tc.args, &out, &errOut)
		require.ErrorContains(t, err, tc.want, "%q", tc.args)
		var ue *UsageError
		require.ErrorAs(t, err, &ue, "%q", tc.args)
		require.Empty(t, out.String(), "%q: nothing measured", tc.args)
	}
}

func TestAMissingGuestImageSaysToBuildIt(t *testing.T) {
	for _, name := range []string{"react", "migrate"} {
		var out, errOut bytes.Buffer
		err := Main(context.Background(), []string{name, "-guest", t.TempDir(), "-bin", t.TempDir()}, &out, &errOut)
		require.ErrorContains(t, err, "run `make guest`", name)
		var ue *UsageError
		require.False(t, errors.As(err, &ue), "%s: a missing image is no usage mistake: %v", name, err)
		require.Empty(t, out.String())
	}
}

func TestKillQEMUsSparesProcessesOfOtherDirectories(t *testing.T) {
	dir := t.TempDir()
	// This test's own pid, recorded as a QEMU of dir: its command line does
	// not name dir, so it must be left alone.
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "vm@node-a"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "vm@node-a", "pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600))
	require.NoError(t, killQEMUs(dir))
}

func reportOf(total, used uint64) api.Usage { return api.Usage{OnlineMemory: total, MemoryUsed: used} }
