// Package guests keeps what the guests report: a window of recent metrics
// per VM and the events not yet handed to the control loop. It follows the
// hypervisor plugin's GuestReports stream, reconnecting when the stream or
// the plugin breaks, and calls back at once on pressure events so the loop
// need not wait for its next tick.
package guests

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// Sample is one metrics sample of one guest.
type Sample struct {
	T               int64
	Load1, Load5    float64
	CPUPressure     float64
	MemoryPressure  float64
	MemoryUsed      uint64
	MemoryCached    uint64
	OnlineVCPUMilli int64
	OnlineMemory    uint64
	UptimeNanos     int64
	// DB is nil for a guest that runs no database.
	DB *DBSample
}

// DBSample is what the database in the guest reported.
type DBSample struct {
	ActiveConnections, Connections uint32
	WorkingSetBytes                uint64
}

// Buffer is safe for concurrent use.
type Buffer struct {
	window time.Duration
	log    hclog.Logger
	// OnPressure is called (outside the lock) for every pressure event.
	onPressure func(vm string)

	mu      sync.Mutex
	samples map[string][]Sample
	events  map[string][]*pb.GuestEvent
}

// New keeps window worth of samples per VM.
func New(window time.Duration, log hclog.Logger, onPressure func(vm string)) *Buffer {
	if onPressure == nil {
		onPressure = func(string) {}
	}
	return &Buffer{window: window, log: log, onPressure: onPressure, samples: map[string][]Sample{}, events: map[string][]*pb.GuestEvent{}}
}

// Add takes one report. Samples older than the window (relative to the
// newest) are dropped; a sample not newer than the last is ignored, so a
// replayed report cannot reorder the window.
func (b *Buffer) Add(r *pb.GuestReport) error {
	samples, err := samplesOf(r.GetMetrics())
	if err != nil {
		return fmt.Errorf("report for %q: %w", r.GetName(), err)
	}
	vm := r.GetName()
	pressure := false
	b.mu.Lock()
	s := b.samples[vm]
	for _, x := range samples {
		if n := len(s); n > 0 && x.T <= s[n-1].T {
			continue
		}
		s = append(s, x)
	}
	if n := len(s); n > 0 {
		cut := s[n-1].T - b.window.Nanoseconds()
		i := 0
		for i < n && s[i].T < cut {
			i++
		}
		s = append(s[:0:0], s[i:]...)
	}
	b.samples[vm] = s
	for _, e := range r.GetEvents() {
		b.events[vm] = append(b.events[vm], e)
		if e.GetType() == pb.GuestEventType_GUEST_EVENT_TYPE_MEMORY_PRESSURE || e.GetType() == pb.GuestEventType_GUEST_EVENT_TYPE_CPU_PRESSURE {
			pressure = true
		}
	}
	b.mu.Unlock()
	if pressure {
		b.onPressure(vm)
	}
	return nil
}

// samplesOf checks a window's columns and turns it into samples. A column
// the source cannot measure may be empty; any other length is malformed.
func samplesOf(w *pb.MetricsWindow) ([]Sample, error) {
	n := len(w.GetTUnixNano())
	cols := map[string]int{
		"load1": len(w.GetLoad1()), "load5": len(w.GetLoad5()),
		"cpu_pressure_avg10": len(w.GetCpuPressureAvg10()), "memory_pressure_avg10": len(w.GetMemoryPressureAvg10()),
		"memory_used_bytes": len(w.GetMemoryUsedBytes()), "memory_cached_bytes": len(w.GetMemoryCachedBytes()),
		"online_vcpu_milli": len(w.GetOnlineVcpuMilli()), "online_memory_bytes": len(w.GetOnlineMemoryBytes()),
		"uptime_nanos":          len(w.GetUptimeNanos()),
		"db_active_connections": len(w.GetDbActiveConnections()), "db_connections": len(w.GetDbConnections()),
		"db_working_set_bytes": len(w.GetDbWorkingSetBytes()),
	}
	for name, l := range cols {
		if l != 0 && l != n {
			return nil, fmt.Errorf("metrics.%s: %d values for %d timestamps", name, l, n)
		}
	}
	at := func(l int, i int) bool { return l == n && i < l }
	db := cols["db_active_connections"] == n && cols["db_connections"] == n && cols["db_working_set_bytes"] == n
	out := make([]Sample, n)
	for i := range out {
		s := Sample{T: w.GetTUnixNano()[i]}
		if s.T <= 0 {
			return nil, fmt.Errorf("metrics.t_unix_nano[%d]: must be > 0", i)
		}
		if at(cols["load1"], i) {
			s.Load1 = w.GetLoad1()[i]
		}
		if at(cols["load5"], i) {
			s.Load5 = w.GetLoad5()[i]
		}
		if at(cols["cpu_pressure_avg10"], i) {
			s.CPUPressure = w.GetCpuPressureAvg10()[i]
		}
		if at(cols["memory_pressure_avg10"], i) {
			s.MemoryPressure = w.GetMemoryPressureAvg10()[i]
		}
		if at(cols["memory_used_bytes"], i) {
			s.MemoryUsed = w.GetMemoryUsedBytes()[i]
		}
		if at(cols["memory_cached_bytes"], i) {
			s.MemoryCached = w.GetMemoryCachedBytes()[i]
		}
		if at(cols["online_vcpu_milli"], i) {
			s.OnlineVCPUMilli = w.GetOnlineVcpuMilli()[i]
		}
		if at(cols["online_memory_bytes"], i) {
			s.OnlineMemory = w.GetOnlineMemoryBytes()[i]
		}
		if at(cols["uptime_nanos"], i) {
			s.UptimeNanos = w.GetUptimeNanos()[i]
		}
		if db && n > 0 {
			s.DB = &DBSample{ActiveConnections: w.GetDbActiveConnections()[i], Connections: w.GetDbConnections()[i], WorkingSetBytes: w.GetDbWorkingSetBytes()[i]}
		}
		out[i] = s
	}
	return out, nil
}

// Window implements control.Guests: the VM's window and the events since
// the last call (they are handed over once).
func (b *Buffer) Window(vm string) (*pb.MetricsWindow, []*pb.GuestEvent, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.samples[vm]
	if len(s) == 0 {
		return nil, nil, false
	}
	w := &pb.MetricsWindow{}
	// The database columns are all or nothing: a window that mixes samples
	// from before the database started with samples after has none.
	db := true
	for _, x := range s {
		db = db && x.DB != nil
	}
	for _, x := range s {
		if db {
			w.DbActiveConnections = append(w.DbActiveConnections, x.DB.ActiveConnections)
			w.DbConnections = append(w.DbConnections, x.DB.Connections)
			w.DbWorkingSetBytes = append(w.DbWorkingSetBytes, x.DB.WorkingSetBytes)
		}
		w.TUnixNano = append(w.TUnixNano, x.T)
		w.Load1 = append(w.Load1, x.Load1)
		w.Load5 = append(w.Load5, x.Load5)
		w.CpuPressureAvg10 = append(w.CpuPressureAvg10, x.CPUPressure)
		w.MemoryPressureAvg10 = append(w.MemoryPressureAvg10, x.MemoryPressure)
		w.MemoryUsedBytes = append(w.MemoryUsedBytes, x.MemoryUsed)
		w.MemoryCachedBytes = append(w.MemoryCachedBytes, x.MemoryCached)
		w.OnlineVcpuMilli = append(w.OnlineVcpuMilli, x.OnlineVCPUMilli)
		w.OnlineMemoryBytes = append(w.OnlineMemoryBytes, x.OnlineMemory)
		w.UptimeNanos = append(w.UptimeNanos, x.UptimeNanos)
	}
	events := b.events[vm]
	delete(b.events, vm)
	return w, events, true
}

// Latest is the VM's newest sample (for status), and whether there is one.
func (b *Buffer) Latest(vm string) (Sample, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.samples[vm]
	if len(s) == 0 {
		return Sample{}, false
	}
	return s[len(s)-1], true
}

// Forget drops a VM (stopped or removed).
func (b *Buffer) Forget(vm string) {
	b.mu.Lock()
	delete(b.samples, vm)
	delete(b.events, vm)
	b.mu.Unlock()
}

// Stream opens a report stream (the hypervisor plugin's GuestReports).
type Stream func(ctx context.Context) (interface {
	Recv() (*pb.GuestReport, error)
}, error)

// Follow reads reports from open until ctx ends, reopening the stream with
// backoff when it fails (the plugin restarted, or was not up yet).
func (b *Buffer) Follow(ctx context.Context, open Stream) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		st, err := open(ctx)
		if err == nil {
			backoff = 100 * time.Millisecond
			err = b.drain(st)
		}
		if ctx.Err() != nil {
			return
		}
		if err != io.EOF {
			b.log.Warn("guest report stream broke; reopening", "error", err, "in", backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (b *Buffer) drain(st interface {
	Recv() (*pb.GuestReport, error)
}) error {
	for {
		r, err := st.Recv()
		if err != nil {
			return err
		}
		if err := b.Add(r); err != nil {
			// A bad report is dropped whole and named; the stream goes on.
			b.log.Warn("dropping a malformed guest report", "error", err)
		}
	}
}
