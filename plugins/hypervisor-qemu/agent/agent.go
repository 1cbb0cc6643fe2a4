package main

import (
	"context"
	"log"
	"sync"
	"time"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentproto"
)

// Intervals of the agent's loops.
const (
	metricsInterval = time.Second
	// memorySampleInterval is short because pressure must be caught while a
	// burst of allocation is still underway.
	memorySampleInterval = 100 * time.Millisecond
	// rescanInterval is the fallback for a missed uevent.
	rescanInterval = 2 * time.Second
)

// agent is the guest side of the plugin's channel: it reports, onlines
// hotplugged resources and answers requests. Everything it learns about the
// guest comes through sys; time through now and uptime.
type agent struct {
	sys    system
	cpus   *cpuController
	loads  loadGen
	out    *outbox
	floor  uint64 // never consent to a downscale below it (vertigo.memory_floor)
	kernel string
	now    func() time.Time
	uptime func() time.Duration
	log    *sparseLog

	// memoryChanged asks the memory sampler for a sample now, after a
	// memory block came online.
	memoryChanged chan struct{}
}

func newAgent(sys system, floor uint64, kernel string, now func() time.Time, uptime func() time.Duration, logger *log.Logger) *agent {
	return &agent{
		sys:           sys,
		cpus:          &cpuController{sys: sys},
		out:           newOutbox(),
		floor:         floor,
		kernel:        kernel,
		now:           now,
		uptime:        uptime,
		log:           &sparseLog{l: logger, last: map[string]string{}},
		memoryChanged: make(chan struct{}, 1),
	}
}

// state reads the guest's current metrics into a message of type typ.
func (a *agent) state(typ string) (*agentproto.Message, error) {
	mem, err := a.sys.memInfo()
	if err != nil {
		return nil, err
	}
	load1, load5, err := a.sys.loadAvg()
	if err != nil {
		return nil, err
	}
	cpuPSI, err := a.sys.pressure("cpu")
	if err != nil {
		return nil, err
	}
	memPSI, err := a.sys.pressure("memory")
	if err != nil {
		return nil, err
	}
	cpus, err := a.sys.onlineCPUCount()
	if err != nil {
		return nil, err
	}
	db, err := a.sys.database(mem)
	if err != nil {
		return nil, err
	}
	return &agentproto.Message{
		Type:                typ,
		TUnixNano:           a.now().UnixNano(),
		Load1:               load1,
		Load5:               load5,
		CPUPressureAvg10:    cpuPSI,
		MemoryPressureAvg10: memPSI,
		MemoryUsedBytes:     mem.Used(),
		MemoryCachedBytes:   mem.Cached,
		MemoryTotalBytes:    mem.Total,
		OnlineCPUs:          cpus,
		UptimeNanos:         int64(a.uptime()),
		DB:                  db,
	}, nil
}

// hello opens every host connection: who the agent is, and the state now.
func (a *agent) hello() *agentproto.Message {
	m, err := a.state(agentproto.TypeHello)
	if err != nil {
		a.log.error("hello", err)
		m = &agentproto.Message{Type: agentproto.TypeHello, TUnixNano: a.now().UnixNano()}
	}
	m.Version = agentproto.Version
	m.AgentName = "vertigo-agent"
	m.KernelLabel = a.kernel
	m.BootNanos = int64(a.uptime())
	return m
}

func (a *agent) event(name string) *agentproto.Message {
	return &agentproto.Message{Type: agentproto.TypeEvent, Event: name, TUnixNano: a.now().UnixNano()}
}

// reportMetrics posts the guest's state every interval until ctx ends.
func (a *agent) reportMetrics(ctx context.Context) {
	tick := time.NewTicker(metricsInterval)
	defer tick.Stop()
	for {
		a.postState()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// postState posts the guest's state now: every second, and at once after
// something came online, so the host sees a resize land without waiting
// for the next second.
func (a *agent) postState() {
	m, err := a.state(agentproto.TypeMetrics)
	a.log.error("metrics", err)
	if err == nil {
		a.out.postMetrics(m)
	}
}

// watchCPU samples the CPU stall time often and raises cpu_pressure when
// tasks have been waiting for a CPU.
func (a *agent) watchCPU(ctx context.Context) {
	tick := time.NewTicker(memorySampleInterval)
	defer tick.Stop()
	detector := newCPUStallDetector()
	for {
		total, ok, err := a.sys.pressureTotal("cpu")
		a.log.error("cpu pressure", err)
		if !ok && err == nil {
			return // no PSI in this kernel: nothing to watch
		}
		if ok && detector.observe(a.now(), total, a.cpus.offlineCount()) {
			a.out.post(a.event(agentproto.EventCPUPressure))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// watchMemory samples memory often: it raises memory_pressure while the
// guest is nearly full and memory_online when hotplugged memory shows up.
func (a *agent) watchMemory(ctx context.Context) {
	tick := time.NewTicker(memorySampleInterval)
	defer tick.Stop()
	detector := newPressureDetector()
	var lastTotal uint64
	for {
		mem, err := a.sys.memInfo()
		a.log.error("memory", err)
		if err == nil {
			if lastTotal != 0 && mem.Total > lastTotal {
				ev := a.event(agentproto.EventMemoryOnline)
				ev.MemoryTotalBytes, ev.MemoryUsedBytes = mem.Total, mem.Used()
				a.out.post(ev)
				a.postState()
			}
			lastTotal = mem.Total
			if detector.observe(a.now(), mem) {
				ev := a.event(agentproto.EventMemoryPressure)
				ev.MemoryTotalBytes, ev.MemoryUsedBytes = mem.Total, mem.Used()
				a.out.post(ev)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-a.memoryChanged:
		}
	}
}

// sampleMemoryNow wakes the memory sampler without waiting for its tick.
func (a *agent) sampleMemoryNow() {
	select {
	case a.memoryChanged <- struct{}{}:
	default:
	}
}

// sparseLog logs a failure once, not once per loop iteration: a line per
// key when its error changes, and one when it clears.
type sparseLog struct {
	l    *log.Logger
	mu   sync.Mutex
	last map[string]string
}

func (s *sparseLog) error(key string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, failing := s.last[key]
	switch {
	case err == nil && failing:
		delete(s.last, key)
		s.l.Printf("%s: recovered", key)
	case err != nil && err.Error() != prev:
		s.last[key] = err.Error()
		s.l.Printf("%s: %v", key, err)
	}
}

func (s *sparseLog) printf(format string, args ...any) { s.l.Printf(format, args...) }
