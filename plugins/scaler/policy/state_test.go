package policy_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/plugins/scaler/policy"
)

func TestStateRoundTrip(t *testing.T) {
	s := policy.State{
		CPU:        policy.DimState{LowSince: t0.UnixNano(), LowPeak: 1250, LastUpscale: t0.Add(-time.Minute).UnixNano()},
		Memory:     policy.DimState{LowPeak: 3 * gib},
		EventsSeen: t0.Add(-time.Second).UnixNano(),
	}
	b := s.Encode()
	require.Less(t, len(b), 120, "compact: %s", b)
	got, err := policy.DecodeState(b)
	require.NoError(t, err)
	require.Equal(t, s, got)

	empty, err := policy.DecodeState(nil)
	require.NoError(t, err)
	require.Equal(t, policy.State{}, empty)
	require.Equal(t, `{"v":1}`, string(policy.State{}.Encode()))
}

func TestDecodeStateRejectsWhatItDidNotWrite(t *testing.T) {
	for _, b := range []string{"garbage", `{"v":2,"e":5}`, `{"e":5}`, `{"v":1,"c":{"ls":"soon"}}`} {
		_, err := policy.DecodeState([]byte(b))
		require.Error(t, err, b)
	}
}

func TestDecideIsDeterministic(t *testing.T) {
	w := steady(t0, 12, 1.7, 3*gib)
	w.CPUPressure = make([]float64, 12)
	w.MemoryPressure = make([]float64, 12)
	w.CPUPressure[11], w.MemoryPressure[11] = 14, 2
	for i := range w.Load1 {
		w.Load1[i] += 0.05 * float64(i%3)
	}
	in := policy.Input{
		Now: t0, Current: policy.Size{VCPUMilli: 6000, MemoryBytes: 3 * gib}, Bounds: quarterCU(), Metrics: w,
		Cache:  []policy.CacheWindow{{Seconds: 60, Bytes: gib}, {Seconds: 300, Bytes: 5 * gib}},
		Events: []policy.Event{{Type: policy.EventMemoryPressure, At: t0, MemoryUsed: 3 * gib}, {Type: policy.EventCPUPressure, At: t0.Add(-time.Second)}},
		State:  stabilized(), Refusals: 4, LastRefusal: t0.Add(-time.Hour),
	}
	for _, cfg := range []policy.Config{policy.DefaultConfig(), neonConfig()} {
		first := policy.Decide(cfg, in)
		for range 20 {
			require.Equal(t, first, policy.Decide(cfg, in))
		}
		require.Equal(t, first.State.Encode(), policy.Decide(cfg, in).State.Encode())
	}
}
