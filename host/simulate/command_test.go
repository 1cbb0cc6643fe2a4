package simulate

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// writeFleetTrace writes a gzip trace of six VMs over a day: daily cycles
// out of phase, noise and bursts, on a fleet small enough that growth is
// denied and nodes go over their watermark.
func writeFleetTrace(t *testing.T, path string) {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	fmt.Fprintln(zw, "vm_id,t_seconds,cpu_cores_used,mem_bytes_used")
	r := rand.New(rand.NewPCG(5, 0x5117))
	for vm := range 6 {
		for i := range 288 {
			cycle := (1 - math.Cos(2*math.Pi*(float64(i)/288+float64(vm)/6))) / 2
			cpu := max(0, 0.2+2.8*cycle+0.2*r.NormFloat64())
			if r.IntN(40) == 0 {
				cpu += 2
			}
			mem := int64((1 + 3*cycle) * (1 << 30))
			fmt.Fprintf(zw, "vm-%d,%d,%.3f,%d\n", vm, 300*i, cpu, mem)
		}
	}
	require.NoError(t, zw.Close())
	require.NoError(t, os.WriteFile(path, b.Bytes(), 0o644))
}

func fleetArgs(t *testing.T, dir string) []string {
	scaler, placement := pluginBinaries(t)
	return []string{
		"--trace", filepath.Join(dir, "fleet.csv.gz"), "--scaler-bin", scaler, "--placement-bin", placement,
		"--nodes", "2", "--node-vcpus", "8", "--node-memory", "24GiB", "--max-vcpus", "6", "--max-memory", "12GiB",
		"--csv", filepath.Join(dir, "out", "table.csv"), "--plots", filepath.Join(dir, "out"), "--plot-vms", "vm-0,vm-3",
	}
}

// Two replays of the same trace write the same bytes: stdout, the CSV and
// every plot.
func TestReplayIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	writeFleetTrace(t, filepath.Join(dir, "fleet.csv.gz"))
	outputs := func() map[string]string {
		var stdout, stderr bytes.Buffer
		require.NoError(t, Main(context.Background(), fleetArgs(t, dir), &stdout, &stderr), stderr.String())
		got := map[string]string{"stdout": stdout.String()}
		files, err := os.ReadDir(filepath.Join(dir, "out"))
		require.NoError(t, err)
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(dir, "out", f.Name()))
			require.NoError(t, err)
			got[f.Name()] = string(b)
		}
		require.NoError(t, os.RemoveAll(filepath.Join(dir, "out")))
		return got
	}
	first := outputs()
	require.Equal(t, first, outputs())

	names := make([]string, 0, len(first))
	for n := range first {
		names = append(names, n)
	}
	require.ElementsMatch(t, []string{"stdout", "table.csv", "fleet_vcpu.svg", "fleet_memory.svg", "vm_vm-0.svg", "vm_vm-3.svg"}, names)

	// The last lines are one key=value line per policy, and on this fleet
	// placement both refuses growth and moves VMs.
	lines := strings.Split(strings.TrimSpace(first["stdout"]), "\n")
	var denied, migrated bool
	for i, p := range Policies {
		kv := fields(lines[len(lines)-len(Policies)+i])
		require.Equal(t, p.Name, kv["policy"])
		denied = denied || kv["denied_grants"] != "0" || kv["partial_grants"] != "0"
		migrated = migrated || kv["migrations"] != "0"
	}
	require.True(t, denied, "some growth was refused:\n%s", first["stdout"])
	require.True(t, migrated, "some VM moved:\n%s", first["stdout"])
	require.Equal(t, 5, strings.Count(first["table.csv"], "\n"), first["table.csv"])
}

func fields(line string) map[string]string {
	out := map[string]string{}
	for _, f := range strings.Fields(line) {
		k, v, _ := strings.Cut(f, "=")
		out[k] = v
	}
	return out
}

func TestCommandLineMistakes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--trace: required"},
		{[]string{"--trace", "x", "--window", "0", "--min-vcpus", "-1"}, "--window: must be >= 1, got 0; --min-vcpus: must be > 0, got -1"},
		{[]string{"--trace", "x", "--node-memory", "lots"}, `--node-memory: want a size such as 4GiB, got "lots"`},
		{[]string{"--trace", "x", "--policies", "default,magic"}, `--policies: unknown policy "magic"`},
		{[]string{"--trace", "x", "--min-memory", "8GiB", "--max-memory", "4GiB"}, "--min-memory: 8GiB exceeds --max-memory 4GiB"},
		{[]string{"--trace", "x", "--speed", "11"}, "flag provided but not defined: -speed"},
		{[]string{"--trace", "x", "extra"}, `unexpected argument "extra"`},
	} {
		var stdout, stderr bytes.Buffer
		err := Main(context.Background(), tc.args, &stdout, &stderr)
		var ue *UsageError
		require.ErrorAs(t, err, &ue, "%q", tc.args)
		require.ErrorContains(t, err, tc.want, "%q", tc.args)
		require.Empty(t, stdout.String())
	}
}

func TestCommandHelpAndBadInput(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.NoError(t, Main(context.Background(), []string{"--help"}, &stdout, &stderr))
	require.Contains(t, stdout.String(), "usage: vertigo simulate --trace FILE")
	require.Contains(t, stdout.String(), "load1                  = cores demanded over the step")
	require.Contains(t, stdout.String(), "-vm-max-vcpus")

	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.csv")
	require.NoError(t, os.WriteFile(bad, []byte("vm_id,t_seconds,cpu_cores_used,mem_bytes_used\na,0,1,5\na,300,x,5\n"), 0o644))
	err := Main(context.Background(), []string{"--trace", bad}, &stdout, &stderr)
	require.EqualError(t, err, bad+`: line 3: cpu_cores_used: "x" is not a finite number >= 0`)

	writeFleetTrace(t, filepath.Join(dir, "fleet.csv.gz"))
	err = Main(context.Background(), []string{"--trace", filepath.Join(dir, "fleet.csv.gz"), "--plot-vms", "vm-9"}, &stdout, &stderr)
	require.EqualError(t, err, `simulate: --plot-vms: no VM "vm-9" in the trace`)
}
