package main

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/vertigo-autoscaler/vertigo/plugins/scaler/policy"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// maxExact bounds sizes: the policy computes in float64, exact for whole
// numbers below 2^53 (8PiB of memory, 9 billion vCPUs).
const maxExact = 1 << 53

// inputFrom checks one VM's wire input and converts it. Errors name the
// field relative to the VM ("bounds.unit.memory_bytes: must be > 0"); the
// state is decoded by the caller, which must not fail on it.
func inputFrom(v *pb.ScalerInput, now time.Time) (policy.Input, error) {
	if v.GetVm() == "" {
		return policy.Input{}, errors.New("vm: must not be empty")
	}
	current, err := sizeFrom("current", v.GetCurrent())
	if err != nil {
		return policy.Input{}, err
	}
	bounds, err := boundsFrom(v.GetBounds())
	if err != nil {
		return policy.Input{}, err
	}
	metrics, err := windowFrom(v.GetMetrics())
	if err != nil {
		return policy.Input{}, err
	}
	cache, err := cacheFrom(v.GetCache())
	if err != nil {
		return policy.Input{}, err
	}
	events, err := eventsFrom(v.GetEvents())
	if err != nil {
		return policy.Input{}, err
	}
	in := policy.Input{
		Now: now, Current: current, Bounds: bounds, Metrics: metrics, Cache: cache, Events: events,
		Refusals: v.GetDownscaleRefusals(),
	}
	switch t := v.GetLastRefusalUnixNano(); {
	case t < 0:
		return policy.Input{}, fmt.Errorf("last_refusal_unix_nano: must be >= 0, got %d", t)
	case t > 0:
		in.LastRefusal = time.Unix(0, t)
	}
	return in, nil
}

func sizeFrom(field string, s *pb.Size) (policy.Size, error) {
	switch {
	case s.GetVcpuMilli() < 0 || s.GetVcpuMilli() >= maxExact:
		return policy.Size{}, fmt.Errorf("%s.vcpu_milli: must be in [0, 2^53), got %d", field, s.GetVcpuMilli())
	case s.GetMemoryBytes() >= maxExact:
		return policy.Size{}, fmt.Errorf("%s.memory_bytes: must be below 2^53, got %d", field, s.GetMemoryBytes())
	}
	return policy.Size{VCPUMilli: s.GetVcpuMilli(), MemoryBytes: s.GetMemoryBytes()}, nil
}

func boundsFrom(b *pb.Bounds) (policy.Bounds, error) {
	if b == nil {
		return policy.Bounds{}, errors.New("bounds: required")
	}
	var out policy.Bounds
	for _, s := range []struct {
		field string
		in    *pb.Size
		out   *policy.Size
	}{{"bounds.min", b.GetMin(), &out.Min}, {"bounds.max", b.GetMax(), &out.Max}, {"bounds.unit", b.GetUnit(), &out.Unit}} {
		size, err := sizeFrom(s.field, s.in)
		if err != nil {
			return policy.Bounds{}, err
		}
		*s.out = size
	}
	switch {
	case out.Unit.VCPUMilli == 0:
		return policy.Bounds{}, errors.New("bounds.unit.vcpu_milli: must be > 0")
	case out.Unit.MemoryBytes == 0:
		return policy.Bounds{}, errors.New("bounds.unit.memory_bytes: must be > 0")
	case out.Max.VCPUMilli == 0:
		return policy.Bounds{}, errors.New("bounds.max.vcpu_milli: must be > 0")
	case out.Max.MemoryBytes == 0:
		return policy.Bounds{}, errors.New("bounds.max.memory_bytes: must be > 0")
	case out.Min.VCPUMilli > out.Max.VCPUMilli:
		return policy.Bounds{}, fmt.Errorf("bounds.min.vcpu_milli: %d exceeds bounds.max.vcpu_milli %d", out.Min.VCPUMilli, out.Max.VCPUMilli)
	case out.Min.MemoryBytes > out.Max.MemoryBytes:
		return policy.Bounds{}, fmt.Errorf("bounds.min.memory_bytes: %d exceeds bounds.max.memory_bytes %d", out.Min.MemoryBytes, out.Max.MemoryBytes)
	}
	return out, nil
}

func windowFrom(m *pb.MetricsWindow) (policy.Window, error) {
	n := len(m.GetTUnixNano())
	for _, c := range []struct {
		name string
		len  int
	}{
		{"load1", len(m.GetLoad1())}, {"load5", len(m.GetLoad5())},
		{"cpu_pressure_avg10", len(m.GetCpuPressureAvg10())}, {"memory_pressure_avg10", len(m.GetMemoryPressureAvg10())},
		{"memory_used_bytes", len(m.GetMemoryUsedBytes())}, {"memory_cached_bytes", len(m.GetMemoryCachedBytes())},
		{"online_vcpu_milli", len(m.GetOnlineVcpuMilli())}, {"online_memory_bytes", len(m.GetOnlineMemoryBytes())},
		{"db_active_connections", len(m.GetDbActiveConnections())}, {"db_connections", len(m.GetDbConnections())},
		{"db_working_set_bytes", len(m.GetDbWorkingSetBytes())},
	} {
		if c.len != 0 && c.len != n {
			return policy.Window{}, fmt.Errorf("metrics: column %s has %d values, t_unix_nano has %d", c.name, c.len, n)
		}
	}
	t := make([]time.Time, n)
	for i, ns := range m.GetTUnixNano() {
		switch {
		case ns <= 0:
			return policy.Window{}, fmt.Errorf("metrics.t_unix_nano[%d]: must be > 0, got %d", i, ns)
		case i > 0 && ns <= m.GetTUnixNano()[i-1]:
			return policy.Window{}, fmt.Errorf("metrics.t_unix_nano[%d]: %d is not after the previous sample (oldest first)", i, ns)
		}
		t[i] = time.Unix(0, ns)
	}
	for _, c := range []struct {
		name  string
		col   []float64
		limit float64
	}{
		{"load1", m.GetLoad1(), math.Inf(1)}, {"load5", m.GetLoad5(), math.Inf(1)},
		{"cpu_pressure_avg10", m.GetCpuPressureAvg10(), 100}, {"memory_pressure_avg10", m.GetMemoryPressureAvg10(), 100},
	} {
		if err := checkColumn(c.name, c.col, c.limit); err != nil {
			return policy.Window{}, err
		}
	}
	for i, v := range m.GetOnlineVcpuMilli() {
		if v < 0 {
			return policy.Window{}, fmt.Errorf("metrics.online_vcpu_milli[%d]: must be >= 0, got %d", i, v)
		}
	}
	if conns := m.GetDbConnections(); len(conns) > 0 {
		for i, a := range m.GetDbActiveConnections() {
			if a > conns[i] {
				return policy.Window{}, fmt.Errorf("metrics.db_active_connections[%d]: %d exceeds db_connections[%d] %d", i, a, i, conns[i])
			}
		}
	}
	return policy.Window{
		T: t, Load1: m.GetLoad1(), CPUPressure: m.GetCpuPressureAvg10(),
		MemoryPressure: m.GetMemoryPressureAvg10(), MemoryUsed: m.GetMemoryUsedBytes(),
		DBActiveConnections: m.GetDbActiveConnections(), DBWorkingSet: m.GetDbWorkingSetBytes(),
	}, nil
}

// checkColumn requires finite values in [0, limit] and names the first
// that is not.
func checkColumn(name string, col []float64, limit float64) error {
	for i, v := range col {
		if !(v >= 0 && v <= limit) || math.IsInf(v, 0) {
			want := "a finite number >= 0"
			if !math.IsInf(limit, 1) {
				want = fmt.Sprintf("within [0, %g]", limit)
			}
			return fmt.Errorf("metrics.%s[%d]: must be %s, got %g", name, i, want, v)
		}
	}
	return nil
}

func cacheFrom(c *pb.CacheWorkingSet) ([]policy.CacheWindow, error) {
	secs, bytes := c.GetWindowSeconds(), c.GetBytes()
	if len(secs) != len(bytes) {
		return nil, fmt.Errorf("cache: window_seconds has %d values, bytes has %d", len(secs), len(bytes))
	}
	out := make([]policy.CacheWindow, len(secs))
	for i, s := range secs {
		if s == 0 || (i > 0 && s <= secs[i-1]) {
			return nil, fmt.Errorf("cache.window_seconds[%d]: must be > 0 and longer than the previous window (shortest first), got %d", i, s)
		}
		out[i] = policy.CacheWindow{Seconds: s, Bytes: bytes[i]}
	}
	return out, nil
}

// eventsFrom keeps the pressure events; the others (refusals arrive as
// counts, readiness does not affect the goal) and types newer than this
// plugin are ignored.
func eventsFrom(events []*pb.GuestEvent) ([]policy.Event, error) {
	var out []policy.Event
	for i, e := range events {
		var typ policy.EventType
		switch e.GetType() {
		case pb.GuestEventType_GUEST_EVENT_TYPE_MEMORY_PRESSURE:
			typ = policy.EventMemoryPressure
		case pb.GuestEventType_GUEST_EVENT_TYPE_CPU_PRESSURE:
			typ = policy.EventCPUPressure
		default:
			continue
		}
		// The time tells a new event from one handed over again.
		if e.GetTUnixNano() <= 0 {
			return nil, fmt.Errorf("events[%d].t_unix_nano: must be > 0, got %d", i, e.GetTUnixNano())
		}
		out = append(out, policy.Event{Type: typ, At: time.Unix(0, e.GetTUnixNano()), MemoryUsed: e.GetMemoryUsedBytes()})
	}
	return out, nil
}
