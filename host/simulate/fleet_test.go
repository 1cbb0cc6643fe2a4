package simulate

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/model"
)

// What a simulated guest reports, by hand: a window of three steps, the
// sizes in force changing between steps, and a gap in the trace.
func TestWindowIsWhatTheGuestWouldReport(t *testing.T) {
	g := &Grid{Step: time.Minute, Steps: 5, VMs: []Series{{
		ID:      "a",
		Present: []bool{true, true, false, true, true},
		CPU:     []float64{1, 2, 0, 4, 1},
		Mem:     []uint64{100, 300, 0, 200, 400},
	}}}
	f := newFleet(g, 3, []model.Size{{VCPUMilli: 2000, MemoryBytes: 200}})
	at := func(k int) int64 { return epoch.Add(time.Duration(k) * time.Minute).UnixNano() }

	f.begin(0)
	w, _, ok := f.Window("a")
	require.True(t, ok)
	require.Equal(t, []int64{at(0)}, w.TUnixNano)
	require.Equal(t, []float64{1}, w.Load1)
	require.Equal(t, []float64{0}, w.CpuPressureAvg10)
	require.Equal(t, []uint64{100}, w.MemoryUsedBytes)
	require.Equal(t, []float64{0}, w.MemoryPressureAvg10)

	_, err := f.Resize(t.Context(), "a", model.Size{VCPUMilli: 1000, MemoryBytes: 400}, false, 0)
	require.NoError(t, err)
	f.begin(1)
	w, _, ok = f.Window("a")
	require.True(t, ok)
	require.Equal(t, []int64{at(0), at(1)}, w.TUnixNano)
	require.Equal(t, []float64{1, 2}, w.Load1)
	require.Equal(t, []float64{0, 50}, w.CpuPressureAvg10, "2 cores demanded of 1 vCPU: half of it stalled")
	require.Equal(t, []uint64{100, 300}, w.MemoryUsedBytes)

	f.begin(2)
	_, _, ok = f.Window("a")
	require.False(t, ok, "no report in a gap")

	f.begin(3)
	w, _, ok = f.Window("a")
	require.True(t, ok)
	require.Equal(t, []int64{at(1), at(3)}, w.TUnixNano, "the gap is skipped")
	require.Equal(t, []float64{2, 4}, w.Load1)
	require.Equal(t, []float64{50, 75}, w.CpuPressureAvg10)
	require.Equal(t, []uint64{300, 200}, w.MemoryUsedBytes)
	require.Equal(t, []float64{0, 0}, w.MemoryPressureAvg10)

	_, err = f.Resize(t.Context(), "a", model.Size{VCPUMilli: 4000, MemoryBytes: 100}, false, 0)
	require.NoError(t, err)
	f.begin(4)
	w, _, ok = f.Window("a")
	require.True(t, ok)
	require.Equal(t, []int64{at(3), at(4)}, w.TUnixNano, "steps 2-4, the gap skipped")
	require.Equal(t, []float64{75, 0}, w.CpuPressureAvg10, "each step against the size it had")
	require.Equal(t, []uint64{200, 100}, w.MemoryUsedBytes)
	require.Equal(t, []float64{0, 75}, w.MemoryPressureAvg10)
}

// A window without gaps shares the fleet's columns; appending to it must
// not write into the next step.
func TestWindowCannotOverwriteTheFleet(t *testing.T) {
	g := &Grid{Step: time.Minute, Steps: 3, VMs: []Series{{ID: "a", Present: []bool{true, true, true}, CPU: []float64{1, 2, 3}}}}
	f := newFleet(g, 2, []model.Size{{VCPUMilli: 1000, MemoryBytes: 100}})
	f.begin(0)
	f.begin(1)
	w, _, ok := f.Window("a")
	require.True(t, ok)
	require.Nil(t, w.MemoryUsedBytes, "no memory in the trace: none reported")
	_ = append(w.Load1, 99)
	require.Equal(t, []float64{1, 2, 3}, g.VMs[0].CPU)
}
