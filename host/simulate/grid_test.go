package simulate

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestGridAlignedRowsAreTheSteps(t *testing.T) {
	tr := &Trace{VMs: []VMTrace{
		{ID: "a", Samples: []Sample{{T: 600, CPU: 1, Mem: 100}, {T: 900, CPU: 2}, {T: 1200, CPU: 3, Mem: 300}}},
		{ID: "b", Samples: []Sample{{T: 900, CPU: 0.5}}},
	}}
	g, err := NewGrid(tr, 5*time.Minute)
	require.NoError(t, err)
	require.Equal(t, int64(600), g.Origin)
	require.Equal(t, 3, g.Steps)
	// a's second row has no memory: the first reading stands.
	require.Equal(t, Series{ID: "a", Present: []bool{true, true, true}, CPU: []float64{1, 2, 3}, Mem: []uint64{100, 100, 300}}, g.VMs[0])
	require.Equal(t, Series{ID: "b", Present: []bool{false, true, false}, CPU: []float64{0, 0.5, 0}}, g.VMs[1])
	require.True(t, g.HasMemory())
}

// A row covers the time since the row before it: jittered rows are
// weighted by their overlap with each step, and a step less than half
// covered (the end of a gap) does not count.
func TestGridWeighsJitteredRowsAndSkipsGaps(t *testing.T) {
	tr := &Trace{VMs: []VMTrace{{ID: "a", Samples: []Sample{
		{T: 300, CPU: 1},
		{T: 660, CPU: 4},  // covers (300, 660]: all of step 1 and 60s of step 2
		{T: 900, CPU: 2},  // covers (660, 900]: the other 240s of step 2
		{T: 2400, CPU: 3}, // after a gap of 1500s > 2 steps: covers (2100, 2400] only
	}}}}
	g, err := NewGrid(tr, 5*time.Minute)
	require.NoError(t, err)
	s := g.VMs[0]
	require.Equal(t, 8, g.Steps)
	require.Equal(t, []bool{true, true, true, false, false, false, false, true}, s.Present)
	require.InDeltaSlice(t, []float64{1, 4, (4*60 + 2*240) / 300.0, 0, 0, 0, 0, 3}, s.CPU, 1e-12)
	require.Nil(t, s.Mem)
	require.False(t, g.HasMemory())

	_, err = NewGrid(tr, 1500*time.Millisecond)
	require.EqualError(t, err, "step: must be a whole number of seconds >= 1s, got 1.5s")
}
