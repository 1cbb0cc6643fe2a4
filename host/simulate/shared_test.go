package simulate

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The shared traces, relative to this package; absent outside the
// project's workspace, where what uses them skips.
const (
	bitbrainsPath = "../../../shared/traces/bitbrains_rnd.csv.gz"
	planetlabPath = "../../../shared/traces/planetlab.csv.gz"
)

func sharedTrace(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s is absent: this needs the shared traces (see ../shared/traces/README.md)", path)
	}
}

// The shared traces parse and resample as their README describes them.
func TestSharedTraces(t *testing.T) {
	sharedTrace(t, bitbrainsPath)
	sharedTrace(t, planetlabPath)
	bb, err := OpenTrace(bitbrainsPath, ParseOptions{})
	require.NoError(t, err)
	require.Len(t, bb.VMs, 100)
	g, err := NewGrid(bb, 5*time.Minute)
	require.NoError(t, err)
	require.InDelta(t, 30, float64(g.Steps)*g.Step.Hours()/24, 0.1, "30 days")
	require.True(t, g.HasMemory())

	pl, err := OpenTrace(planetlabPath, ParseOptions{VMMaxVCPUs: 4})
	require.NoError(t, err)
	require.Len(t, pl.VMs, 2568)
	require.Equal(t, columnPercent, pl.CPUColumn)
	g, err = NewGrid(pl, 5*time.Minute)
	require.NoError(t, err)
	require.Equal(t, 288, g.Steps)
	require.False(t, g.HasMemory())
}

// BenchmarkBitbrains is the speed target: the Bitbrains trace (100 VMs, 30
// days of 5-minute steps) for the four policies, out of process, in under a
// minute per op on two cores.
func BenchmarkBitbrains(b *testing.B) {
	sharedTrace(b, bitbrainsPath)
	scaler, placement := pluginBinaries(b)
	for b.Loop() {
		err := Main(context.Background(), []string{"--trace", bitbrainsPath, "--scaler-bin", scaler, "--placement-bin", placement}, io.Discard, io.Discard)
		require.NoError(b, err)
	}
}
