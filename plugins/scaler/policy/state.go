package policy

import (
	"encoding/json"
	"fmt"
	"time"
)

// State is what the policy remembers about a VM between decisions. The host
// stores it opaquely (Encode) and hands it back, so the plugin keeps nothing.
// Times are Unix nanoseconds, 0 meaning never.
type State struct {
	CPU    DimState `json:"c,omitzero"`
	Memory DimState `json:"m,omitzero"`
	// EventsSeen is the time of the newest pressure event acted on: a host
	// that hands an event over twice must not get two upscales for it.
	EventsSeen int64 `json:"e,omitempty"`
	// Usage and Peak are the percentile and peak modes' history.
	Usage *Usage `json:"u,omitempty"`
	Peak  *Peak  `json:"p,omitempty"`
}

// DimState is one dimension's downscale bookkeeping.
type DimState struct {
	// LowSince is when the goal fell (and stayed) below the current size
	// by more than the hysteresis band.
	LowSince int64 `json:"ls,omitempty"`
	// LowPeak is the highest goal seen since LowSince (milli-vCPU or
	// bytes): the downscale goes no lower, so one quiet sample does not
	// decide the size.
	LowPeak float64 `json:"lp,omitempty"`
	// LastUpscale is when the policy last asked for more.
	LastUpscale int64 `json:"up,omitempty"`
}

// stateVersion tags the encoding so a future format is recognised as such
// rather than misread.
const stateVersion = 1

type encodedState struct {
	V int `json:"v"`
	State
}

// Encode returns the state's compact wire form.
func (s State) Encode() []byte {
	b, err := json.Marshal(encodedState{V: stateVersion, State: s})
	if err != nil {
		// Only finite numbers and integers are stored; Marshal cannot fail.
		panic("encoding scaler state: " + err.Error())
	}
	return b
}

// DecodeState parses Encode's output. Empty input is the empty state.
func DecodeState(b []byte) (State, error) {
	if len(b) == 0 {
		return State{}, nil
	}
	var e encodedState
	if err := json.Unmarshal(b, &e); err != nil {
		return State{}, fmt.Errorf("decoding scaler state: %w", err)
	}
	if e.V != stateVersion {
		return State{}, fmt.Errorf("scaler state has version %d, want %d", e.V, stateVersion)
	}
	return e.State, nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
