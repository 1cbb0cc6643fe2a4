package fleet

import (
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentproto"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// reportBuffer is how many reports a subscriber may fall behind before
// reports are dropped for it: a stalled host must not stall the agents.
const reportBuffer = 256

// Hub fans guest reports out to GuestReports streams. Reports are keyed by
// VM name, not by QEMU, so a stream follows a VM across restarts and
// migrations. It implements vm.Reporter.
type Hub struct {
	log hclog.Logger

	mu   sync.Mutex
	subs map[*Subscription]struct{}
}

// NewHub is a hub with no subscribers.
func NewHub(log hclog.Logger) *Hub {
	return &Hub{log: log, subs: map[*Subscription]struct{}{}}
}

// Subscription receives the reports of some VMs.
type Subscription struct {
	hub     *Hub
	names   map[string]bool // empty: every VM
	c       chan *pb.GuestReport
	dropped int
}

// Subscribe starts a subscription to the named VMs' reports (all VMs when
// names is empty).
func (h *Hub) Subscribe(names []string) *Subscription {
	s := &Subscription{hub: h, names: map[string]bool{}, c: make(chan *pb.GuestReport, reportBuffer)}
	for _, n := range names {
		s.names[n] = true
	}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// Reports delivers the subscription's reports in order.
func (s *Subscription) Reports() <-chan *pb.GuestReport { return s.c }

// Close ends the subscription.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	delete(s.hub.subs, s)
	s.hub.mu.Unlock()
}

func (h *Hub) publish(r *pb.GuestReport) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if len(s.names) > 0 && !s.names[r.GetName()] {
			continue
		}
		select {
		case s.c <- r:
		default:
			if s.dropped%reportBuffer == 0 {
				h.log.Warn("a guest report stream is not keeping up; dropping reports", "dropped", s.dropped+1)
			}
			s.dropped++
		}
	}
}

// Agent turns an agent message into a report.
func (h *Hub) Agent(vm string, m *agentproto.Message) {
	if m.Type == agentproto.TypeEvent && m.Event == agentproto.EventProtocolError {
		h.log.Warn("the guest agent could not read a request from the plugin", "vm", vm, "error", m.Error)
		return
	}
	if r := reportFrom(vm, m); r != nil {
		h.publish(r)
	}
}

// DownscaleRefused reports a refused downscale as a guest event.
func (h *Hub) DownscaleRefused(vm, reason string) {
	h.publish(&pb.GuestReport{Name: vm, Events: []*pb.GuestEvent{{
		Type: pb.GuestEventType_GUEST_EVENT_TYPE_DOWNSCALE_REFUSED, TUnixNano: time.Now().UnixNano(), Message: reason,
	}}})
}

// reportFrom is the report for an agent message, or nil for messages the
// host has no use for (the onlining events only confirm resizes).
func reportFrom(vm string, m *agentproto.Message) *pb.GuestReport {
	switch m.Type {
	case agentproto.TypeMetrics:
		return &pb.GuestReport{Name: vm, Metrics: sample(m)}
	case agentproto.TypeHello:
		r := &pb.GuestReport{Name: vm, Events: []*pb.GuestEvent{{
			Type:      pb.GuestEventType_GUEST_EVENT_TYPE_AGENT_READY,
			TUnixNano: m.TUnixNano,
			Message:   fmt.Sprintf("%s (protocol v%d, kernel %s), guest up %v", m.AgentName, m.Version, m.KernelLabel, time.Duration(m.UptimeNanos).Round(time.Millisecond)),
		}}}
		// A hello carries the state as a metrics message would.
		if m.TUnixNano > 0 && m.OnlineCPUs > 0 && m.MemoryTotalBytes > 0 {
			r.Metrics = sample(m)
		}
		return r
	case agentproto.TypeEvent:
		if m.Event == agentproto.EventCPUPressure {
			return &pb.GuestReport{Name: vm, Events: []*pb.GuestEvent{{
				Type:      pb.GuestEventType_GUEST_EVENT_TYPE_CPU_PRESSURE,
				TUnixNano: m.TUnixNano,
				Message:   "tasks waited for a CPU",
			}}}
		}
		if m.Event != agentproto.EventMemoryPressure {
			return nil
		}
		return &pb.GuestReport{Name: vm, Events: []*pb.GuestEvent{{
			Type:             pb.GuestEventType_GUEST_EVENT_TYPE_MEMORY_PRESSURE,
			TUnixNano:        m.TUnixNano,
			Message:          fmt.Sprintf("memory used %d of %d bytes", m.MemoryUsedBytes, m.MemoryTotalBytes),
			MemoryUsedBytes:  m.MemoryUsedBytes,
			MemoryTotalBytes: m.MemoryTotalBytes,
		}}}
	}
	return nil
}

// sample is a one-sample window with every column the message has: the
// database's only when the guest runs one.
func sample(m *agentproto.Message) *pb.MetricsWindow {
	w := &pb.MetricsWindow{
		TUnixNano:           []int64{m.TUnixNano},
		Load1:               []float64{m.Load1},
		Load5:               []float64{m.Load5},
		CpuPressureAvg10:    []float64{m.CPUPressureAvg10},
		MemoryPressureAvg10: []float64{m.MemoryPressureAvg10},
		MemoryUsedBytes:     []uint64{m.MemoryUsedBytes},
		MemoryCachedBytes:   []uint64{m.MemoryCachedBytes},
		OnlineVcpuMilli:     []int64{int64(m.OnlineCPUs) * 1000},
		OnlineMemoryBytes:   []uint64{m.MemoryTotalBytes},
		UptimeNanos:         []int64{m.UptimeNanos},
	}
	if db := m.DB; db != nil {
		w.DbActiveConnections = []uint32{db.ActiveConnections}
		w.DbConnections = []uint32{db.Connections}
		w.DbWorkingSetBytes = []uint64{db.WorkingSetBytes}
	}
	return w
}
