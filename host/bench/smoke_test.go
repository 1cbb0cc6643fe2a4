package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// binDir holds the binaries the smoke tests build, once per test run.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vertigo-bench-bin-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var binaryPackages = map[string]string{
	scalerBinary:    "./plugins/scaler",
	placementBinary: "./plugins/placement",
	hostBinary:      "./host/cmd/vertigo",
}

// buildBinaries builds the named binaries into binDir unless an earlier
// test did, and returns binDir.
func buildBinaries(t *testing.T, names ...string) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	for _, name := range names {
		out := filepath.Join(binDir, name)
		if _, err := os.Stat(out); err == nil {
			continue
		}
		cmd := exec.Command("go", "build", "-o", out, binaryPackages[name])
		cmd.Dir = root
		msg, err := cmd.CombinedOutput()
		require.NoError(t, err, "go build %s:\n%s", binaryPackages[name], msg)
	}
	return binDir
}

// runBench runs Main and returns the figures of its last line, checking
// they are exactly keys, in order, each a number.
func runBench(t *testing.T, args []string, keys ...string) map[string]float64 {
	t.Helper()
	var out, errOut bytes.Buffer
	err := Main(context.Background(), args, &out, &errOut)
	require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	t.Logf("%s", out.String())

	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	var got []string
	figures := map[string]float64{}
	for _, kv := range strings.Fields(lines[len(lines)-1]) {
		k, v, ok := strings.Cut(kv, "=")
		require.True(t, ok, "%q is not key=value", kv)
		f, err := strconv.ParseFloat(v, 64)
		require.NoError(t, err, "%s", kv)
		got = append(got, k)
		figures[k] = f
	}
	require.Equal(t, keys, got)
	return figures
}

func TestSmokePluginCall(t *testing.T) {
	bin := buildBinaries(t, scalerBinary)
	f := runBench(t, []string{"plugin-call", "-n", "50", "-bin", bin},
		"p50_us", "p99_us", "inproc_p50_us", "inproc_p99_us", "batch100_per_decision_us", "calls")
	require.Equal(t, 50.0, f["calls"])
	require.Positive(t, f["p50_us"])
	require.LessOrEqual(t, f["p50_us"], f["p99_us"])
	require.Positive(t, f["inproc_p50_us"])
	require.LessOrEqual(t, f["inproc_p50_us"], f["inproc_p99_us"])
	require.Positive(t, f["batch100_per_decision_us"])
}

func TestSmokePlacement(t *testing.T) {
	bin := buildBinaries(t, placementBinary)
	f := runBench(t, []string{"placement", "-nodes", "10", "-vms", "200", "-asks", "300", "-bin", bin},
		"place_per_s", "grow_batched_per_s", "grow_single_per_s", "apply_per_s", "plan_ms", "nodes", "vms", "overcommits")
	require.Equal(t, 10.0, f["nodes"])
	require.Equal(t, 200.0, f["vms"])
	require.Zero(t, f["overcommits"])
	for _, k := range []string{"place_per_s", "grow_batched_per_s", "grow_single_per_s", "apply_per_s", "plan_ms"} {
		require.Positive(t, f[k], k)
	}
}

func TestSmokeIdle(t *testing.T) {
	bin := buildBinaries(t, hostBinary, scalerBinary, placementBinary)
	f := runBench(t, []string{"idle", "-vms", "3", "-for", "1s", "-bin", bin},
		"vms", "rss_mib", "cpu_pct", "baseline_rss_mib", "baseline_cpu_pct", "window_s")
	require.Equal(t, 3.0, f["vms"])
	require.Positive(t, f["rss_mib"])
	require.Positive(t, f["baseline_rss_mib"])
	require.GreaterOrEqual(t, f["cpu_pct"], 0.0)
	require.GreaterOrEqual(t, f["window_s"], 1.0)
}
