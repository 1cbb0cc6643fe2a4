package policy

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
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

// The wire form is binary: a trace replay encodes millions of states, and
// JSON cost more than the decisions. Version 1 was JSON; it is still read,
// so a host that stored it keeps its VMs' history across the upgrade.
const (
	stateJSONVersion = 1
	stateVersion     = 2
)

// Flags of the version-2 form: which optional parts follow.
const (
	hasUsage = 1 << iota
	hasPeak
	peakCPUSeen
	peakMemSeen
)

type encodedState struct {
	V int `json:"v"`
	State
}

// Encode returns the state's compact wire form: the version, a flags byte,
// then the fields in declaration order as varints (floats as their bits).
func (s State) Encode() []byte {
	b := make([]byte, 0, 32)
	var flags byte
	if s.Usage != nil {
		flags |= hasUsage
	}
	if s.Peak != nil {
		flags |= hasPeak
		if s.Peak.CPUSeen {
			flags |= peakCPUSeen
		}
		if s.Peak.MemSeen {
			flags |= peakMemSeen
		}
	}
	b = append(b, stateVersion, flags)
	for _, d := range []DimState{s.CPU, s.Memory} {
		b = binary.AppendVarint(b, d.LowSince)
		b = appendFloat(b, d.LowPeak)
		b = binary.AppendVarint(b, d.LastUpscale)
	}
	b = binary.AppendVarint(b, s.EventsSeen)
	if u := s.Usage; u != nil {
		b = u.CPU.append(b)
		b = u.Mem.append(b)
		b = binary.AppendVarint(b, u.Last)
		b = binary.AppendVarint(b, u.PeakStart)
		b = binary.AppendUvarint(b, u.Peak)
	}
	if p := s.Peak; p != nil {
		b = appendFloat(b, p.Load)
		b = binary.AppendUvarint(b, p.Used)
	}
	return b
}

// appendFloat writes a float's bits byte-reversed, so that the whole
// numbers the state holds (their low mantissa bits zero) are short varints.
func appendFloat(b []byte, x float64) []byte {
	return binary.AppendUvarint(b, reverseBytes(math.Float64bits(x)))
}

func reverseBytes(u uint64) uint64 {
	var r uint64
	for range 8 {
		r, u = r<<8|u&0xff, u>>8
	}
	return r
}

func (h histogram) append(b []byte) []byte {
	b = binary.AppendVarint(b, h.Ref)
	b = binary.AppendUvarint(b, uint64(len(h.Idx)))
	prev := 0
	for k, i := range h.Idx {
		// Indices ascend: their differences are small.
		b = binary.AppendVarint(b, int64(i-prev))
		b = binary.AppendUvarint(b, h.W[k])
		prev = i
	}
	return b
}

// DecodeState parses Encode's output (or version 1's JSON). Empty input is
// the empty state.
func DecodeState(b []byte) (State, error) {
	if len(b) == 0 {
		return State{}, nil
	}
	if b[0] == '{' {
		return decodeJSONState(b)
	}
	if b[0] != stateVersion {
		return State{}, fmt.Errorf("decoding scaler state: version %d, want %d", b[0], stateVersion)
	}
	r := reader{b: b[1:]}
	var s State
	flags := r.byte()
	for _, d := range []*DimState{&s.CPU, &s.Memory} {
		d.LowSince, d.LowPeak, d.LastUpscale = r.varint(), r.float(), r.varint()
	}
	s.EventsSeen = r.varint()
	if flags&hasUsage != 0 {
		u := &Usage{}
		u.CPU, u.Mem = r.histogram(), r.histogram()
		u.Last, u.PeakStart, u.Peak = r.varint(), r.varint(), r.uvarint()
		s.Usage = u
	}
	if flags&hasPeak != 0 {
		s.Peak = &Peak{Load: r.float(), Used: r.uvarint(), CPUSeen: flags&peakCPUSeen != 0, MemSeen: flags&peakMemSeen != 0}
	}
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%d bytes after the state", len(r.b))
	}
	// Only what Encode writes is read: unknown flags, or numbers written
	// longer than need be, are another writer's, whose meaning is unknown.
	if r.err == nil && !bytes.Equal(s.Encode(), b) {
		r.err = errors.New("not in the form this scaler writes")
	}
	if r.err != nil {
		return State{}, fmt.Errorf("decoding scaler state: %w", r.err)
	}
	return s, nil
}

func decodeJSONState(b []byte) (State, error) {
	var e encodedState
	if err := json.Unmarshal(b, &e); err != nil {
		return State{}, fmt.Errorf("decoding scaler state: %w", err)
	}
	if e.V != stateJSONVersion {
		return State{}, fmt.Errorf("decoding scaler state: version %d, want %d", e.V, stateVersion)
	}
	return e.State, nil
}

// reader consumes the version-2 form; the first error sticks and later
// reads return zeros.
type reader struct {
	b   []byte
	err error
}

var errTruncated = errors.New("truncated")

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.err = errTruncated
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 { return next(r, binary.Uvarint) }

func (r *reader) varint() int64 { return next(r, binary.Varint) }

// next consumes one number that decode reads off the front of r.b.
func next[T any](r *reader, decode func([]byte) (T, int)) T {
	var zero T
	if r.err != nil {
		return zero
	}
	v, n := decode(r.b)
	if n <= 0 {
		r.err = errTruncated
		return zero
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) float() float64 {
	x := math.Float64frombits(reverseBytes(r.uvarint()))
	if r.err == nil && (math.IsNaN(x) || math.IsInf(x, 0)) {
		r.err = fmt.Errorf("a number is %g", x)
	}
	return x
}

func (r *reader) histogram() histogram {
	h := histogram{Ref: r.varint()}
	n := r.uvarint()
	// Each bucket takes at least two bytes: a count beyond that is a lie
	// that must not size an allocation.
	if r.err == nil && n > uint64(len(r.b)/2) {
		r.err = fmt.Errorf("histogram of %d buckets in %d bytes", n, len(r.b))
	}
	if r.err != nil || n == 0 {
		return h
	}
	h.Idx, h.W = make([]int, n), make([]uint64, n)
	prev := 0
	for k := range h.Idx {
		d := r.varint()
		if r.err == nil && (d < 0 || d == 0 && k > 0 || d > math.MaxInt32) {
			r.err = errors.New("histogram buckets out of order")
		}
		prev += int(d)
		h.Idx[k], h.W[k] = prev, r.uvarint()
	}
	return h
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
