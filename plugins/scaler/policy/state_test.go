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
	require.Less(t, len(b), 40, "compact: %x", b)
	got, err := policy.DecodeState(b)
	require.NoError(t, err)
	require.Equal(t, s, got)

	empty, err := policy.DecodeState(nil)
	require.NoError(t, err)
	require.Equal(t, policy.State{}, empty)
	back, err := policy.DecodeState(policy.State{}.Encode())
	require.NoError(t, err)
	require.Equal(t, policy.State{}, back)
}

// Every part of the state, the optional ones included, survives the trip.
func TestStateRoundTripWithHistory(t *testing.T) {
	cfg := percentileConfig()
	st := policy.Decide(cfg, policy.Input{Now: t0, Current: cu(1), Bounds: quarterCU(), Metrics: steady(t0, 12, 1.7, 3*gib)}).State
	require.NotNil(t, st.Usage)
	st.Peak = &policy.Peak{Load: 2.5, Used: 3 * gib, MemSeen: true}
	st.CPU.LowPeak = -1.5 // no reason to be negative, but no reason to break either
	back, err := policy.DecodeState(st.Encode())
	require.NoError(t, err)
	require.Equal(t, st, back)
}

// A host that stored version 1 (JSON) keeps its VMs' state after the
// plugin is upgraded.
func TestDecodeStateReadsVersionOne(t *testing.T) {
	got, err := policy.DecodeState([]byte(`{"v":1,"c":{"ls":5,"lp":1250},"e":7,"p":{"l":2.5,"cs":true}}`))
	require.NoError(t, err)
	require.Equal(t, policy.State{CPU: policy.DimState{LowSince: 5, LowPeak: 1250}, EventsSeen: 7, Peak: &policy.Peak{Load: 2.5, CPUSeen: true}}, got)
}

func TestDecodeStateRejectsWhatItDidNotWrite(t *testing.T) {
	valid := policy.State{CPU: policy.DimState{LowSince: t0.UnixNano(), LowPeak: 1250}, Peak: &policy.Peak{Load: 2}}.Encode()
	for name, b := range map[string][]byte{
		"garbage":          []byte("garbage"),
		"json version 2":   []byte(`{"v":2,"e":5}`),
		"json no version":  []byte(`{"e":5}`),
		"json wrong type":  []byte(`{"v":1,"c":{"ls":"soon"}}`),
		"version 3":        append([]byte{3}, valid[1:]...),
		"truncated":        valid[:len(valid)-1],
		"trailing bytes":   append(append([]byte{}, valid...), 0),
		"huge histogram":   {2, 1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"buckets reversed": {2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 4, 1, 0x7f, 1, 0, 0, 0, 0, 0, 0},
	} {
		_, err := policy.DecodeState(b)
		require.Error(t, err, name)
	}
}

// Whatever bytes arrive, decoding errs or yields a state that encodes back
// to the same bytes: it never panics and never invents.
func FuzzDecodeState(f *testing.F) {
	f.Add(policy.State{}.Encode())
	f.Add(policy.State{CPU: policy.DimState{LowSince: 5, LowPeak: 1250}, Peak: &policy.Peak{Load: 2, CPUSeen: true}}.Encode())
	f.Add(policy.Decide(percentileConfig(), policy.Input{Now: t0, Current: cu(1), Bounds: quarterCU(), Metrics: steady(t0, 12, 1.7, 3*gib)}).State.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := policy.DecodeState(b)
		if err != nil || len(b) == 0 || b[0] == '{' {
			return
		}
		require.Equal(t, b, s.Encode())
	})
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
