package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The QEMU benchmarks need vertigo-qemu (and migrate-net vertigo-bridge)
// beside the other binaries; the entries belong in binaryPackages, which
// another file owns.
func init() {
	binaryPackages[qemuBinary] = "./plugins/hypervisor-qemu"
	binaryPackages[bridgeBinary] = "./plugins/network-bridge"
}

// guestDir is the repository's guest image. A machine without it, or
// without QEMU, fails these tests: the benchmark says to run `make guest`.
func guestDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../../build/guest")
	require.NoError(t, err)
	return dir
}

// ownTempDir points the benchmark's temporary directories (state, QEMU
// run directories) at a directory of the test's, checked once the test is
// over: nothing left in it, and no process still running from it.
func ownTempDir(t *testing.T) {
	// Short: unix socket paths under it are limited to 107 bytes.
	dir, err := os.MkdirTemp("", "vbt")
	require.NoError(t, err)
	t.Setenv("TMPDIR", dir)
	t.Cleanup(func() {
		defer os.RemoveAll(dir)
		left, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.Empty(t, left, "the benchmark removes its directories")
		require.Empty(t, processesUnder(t, dir), "the benchmark stops every process it started")
	})
}

// processesUnder lists the processes whose command line names dir.
func processesUnder(t *testing.T, dir string) []string {
	cmdlines, err := filepath.Glob("/proc/[0-9]*/cmdline")
	require.NoError(t, err)
	var found []string
	for _, f := range cmdlines {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue // exited meanwhile
		}
		if cmd := strings.ReplaceAll(string(raw), "\x00", " "); strings.Contains(cmd, dir) {
			found = append(found, filepath.Base(filepath.Dir(f))+": "+cmd)
		}
	}
	return found
}

func TestSmokeReact(t *testing.T) {
	bin := buildBinaries(t, hostBinary, scalerBinary, placementBinary, qemuBinary)
	ownTempDir(t)
	f := runBench(t, []string{"react", "-runs", "1", "-bin", bin, "-guest", guestDir(t)},
		"cpu_p50_ms", "cpu_from_decision_p50_ms", "cpu_baseline_p50_ms", "mem_p50_ms", "mem_from_decision_p50_ms", "mem_baseline_p50_ms", "runs")
	require.Equal(t, 1.0, f["runs"])
	for _, k := range []string{"cpu_p50_ms", "cpu_baseline_p50_ms", "mem_p50_ms", "mem_baseline_p50_ms"} {
		require.Positive(t, f[k], k)
		require.Less(t, f[k], float64(reactTimeout.Milliseconds()), k)
	}
}

func TestSmokeMigrate(t *testing.T) {
	bin := buildBinaries(t, hostBinary, scalerBinary, placementBinary, qemuBinary)
	ownTempDir(t)
	f := runBench(t, []string{"migrate", "-runs", "1", "-mem", "512MiB", "-bin", bin, "-guest", guestDir(t)},
		"vertigo_total_ms", "vertigo_downtime_ms", "raw_total_ms", "raw_downtime_ms", "mem_bytes", "runs")
	require.Equal(t, 1.0, f["runs"])
	require.Equal(t, float64(512*mib), f["mem_bytes"])
	for _, who := range []string{"vertigo", "raw"} {
		require.Positive(t, f[who+"_total_ms"], who)
		require.GreaterOrEqual(t, f[who+"_downtime_ms"], 0.0, who)
		require.Less(t, f[who+"_downtime_ms"], f[who+"_total_ms"], who)
	}
}

func TestSmokeMigrateNet(t *testing.T) {
	bin := buildBinaries(t, hostBinary, qemuBinary, bridgeBinary)
	ownTempDir(t)
	namespaces := func() string {
		out, err := exec.Command("ip", "netns", "list").Output()
		require.NoError(t, err)
		return string(out)
	}
	before := namespaces()
	f := runBench(t, []string{"migrate-net", "-runs", "1", "-bin", bin, "-guest", guestDir(t)},
		"announce_stall_ms", "announce_worst_stall_ms", "announce_lost", "announce_pings",
		"announce_unrecovered", "no_announce_stall_ms", "no_announce_worst_stall_ms", "no_announce_lost", "no_announce_pings",
		"no_announce_unrecovered", "runs")
	require.Equal(t, 1.0, f["runs"])
	for _, v := range []string{"announce", "no_announce"} {
		require.Positive(t, f[v+"_stall_ms"], "a migration stalls the stream a little: %s", v)
		require.Positive(t, f[v+"_pings"], v)
		require.LessOrEqual(t, f[v+"_lost"], f[v+"_pings"], v)
	}
	require.Less(t, f["announce_stall_ms"], float64(recoverWithin.Milliseconds()), "with the announcement the stream recovers")
	require.Zero(t, f["announce_unrecovered"])
	require.Equal(t, before, namespaces(), "the benchmark removes the namespaces it made")
}
