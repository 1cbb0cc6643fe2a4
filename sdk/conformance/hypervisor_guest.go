package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

const (
	// guestWait is how long a guest may take to show what a spec expects:
	// a boot under TCG, an agent's first report, a hotplug onlined.
	guestWait = 30 * time.Second
	// guestReserved is what a guest kernel keeps for itself: the memory a
	// guest reports online is that much short of the VM's.
	guestReserved = 128 * mib
)

// sample is one row of a guest's MetricsWindow, in the columns the suite
// reads.
type sample struct {
	t, uptime, onlineVCPU    int64
	load1                    float64
	memoryUsed, onlineMemory uint64
}

func (m *sample) String() string {
	if m == nil {
		return "none"
	}
	return fmt.Sprintf("uptime %s, load1 %.2f, %dm vCPU and %s online, %s used",
		time.Duration(m.uptime), m.load1, m.onlineVCPU, formatBytes(m.onlineMemory), formatBytes(m.memoryUsed))
}

// column is one column of a window and how many values it has.
type column struct {
	name string
	n    int
}

// samples splits w into rows. Every column the suite reads must have a
// value per sample; any other may be empty (the source cannot measure it)
// but not ragged.
func samples(w *pb.MetricsWindow) ([]sample, error) {
	n := len(w.GetTUnixNano())
	for _, c := range []column{
		{"uptime_nanos", len(w.GetUptimeNanos())},
		{"load1", len(w.GetLoad1())},
		{"memory_used_bytes", len(w.GetMemoryUsedBytes())},
		{"online_vcpu_milli", len(w.GetOnlineVcpuMilli())},
		{"online_memory_bytes", len(w.GetOnlineMemoryBytes())},
	} {
		if c.n != n {
			return nil, fmt.Errorf("metrics.%s has %d values for %d samples", c.name, c.n, n)
		}
	}
	for _, c := range []column{
		{"load5", len(w.GetLoad5())},
		{"cpu_pressure_avg10", len(w.GetCpuPressureAvg10())},
		{"memory_pressure_avg10", len(w.GetMemoryPressureAvg10())},
		{"memory_cached_bytes", len(w.GetMemoryCachedBytes())},
	} {
		if c.n != 0 && c.n != n {
			return nil, fmt.Errorf("metrics.%s has %d values for %d samples, want one per sample or none", c.name, c.n, n)
		}
	}
	out := make([]sample, n)
	for i := range out {
		out[i] = sample{
			t:            w.GetTUnixNano()[i],
			uptime:       w.GetUptimeNanos()[i],
			onlineVCPU:   w.GetOnlineVcpuMilli()[i],
			load1:        w.GetLoad1()[i],
			memoryUsed:   w.GetMemoryUsedBytes()[i],
			onlineMemory: w.GetOnlineMemoryBytes()[i],
		}
	}
	return out, nil
}

// waitSample reads the guest reports of the VM name until a sample
// satisfies ok, for at most guestWait, and returns that sample; what says
// what the spec waits for.
func (s *session) waitSample(ctx context.Context, name, what string, ok func(sample) bool) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, guestWait)
	defer cancel()
	stream, err := s.c.Hypervisor.GuestReports(ctx, &pb.GuestReportsRequest{Names: []string{name}})
	if err != nil {
		return sample{}, fmt.Errorf("GuestReports: %w", err)
	}
	var last *sample
	for {
		r, err := stream.Recv()
		switch {
		case ctx.Err() != nil:
			return sample{}, fmt.Errorf("no sample from %s's guest %s within %s (last: %s)", name, what, guestWait, last)
		case errors.Is(err, io.EOF):
			return sample{}, fmt.Errorf("GuestReports ended before a sample from %s's guest %s (last: %s)", name, what, last)
		case err != nil:
			return sample{}, fmt.Errorf("GuestReports: %w", err)
		case r.GetName() != name:
			return sample{}, fmt.Errorf("GuestReports for [%s] sent a report for %q", name, r.GetName())
		}
		rows, err := samples(r.GetMetrics())
		if err != nil {
			return sample{}, fmt.Errorf("GuestReports for %s: %w", name, err)
		}
		for _, m := range rows {
			if ok(m) {
				return m, nil
			}
			last = &m
		}
	}
}
