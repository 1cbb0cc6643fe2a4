package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentproto"
)

// maxLoadWorkers bounds a load request's threads.
const maxLoadWorkers = 256

// handle answers one validated request. Every op replies at once: a load
// runs on after its reply.
func (a *agent) handle(req *agentproto.Message) *agentproto.Message {
	reply := &agentproto.Message{Type: agentproto.TypeReply, ID: req.ID}
	var err error
	switch req.Op {
	case agentproto.OpPing:
	case agentproto.OpHello:
		// Queued, not a restart: replies still queued for this host's
		// earlier requests must reach it.
		a.out.post(a.hello())
	case agentproto.OpSetCPUs:
		var res cpuResult
		res, err = a.cpus.setTarget(req.CPUs)
		a.announceCPUs(res)
		reply.OnlineCPUs = res.Online
		if err == nil {
			a.log.printf("set_cpus %d: %d online", req.CPUs, res.Online)
		}
	case agentproto.OpDownscale:
		var mem memInfo
		if mem, err = a.sys.memInfo(); err == nil {
			err = downscaleVerdict(req, mem, a.floor)
		}
		if err != nil {
			a.log.printf("downscale refused: %v", err)
		}
	case agentproto.OpLoad:
		err = a.startLoad(req)
	case agentproto.OpShutdown:
		a.log.printf("shutdown requested: syncing and powering off")
		go a.sys.powerOff()
	default:
		err = fmt.Errorf("request.op: unknown %q", req.Op)
	}
	reply.OK = err == nil
	if err != nil {
		reply.Error = err.Error()
	}
	return reply
}

// downscaleVerdict is the guest's consent to shrink to req's size: nil, or
// why not. A memory target of 0 leaves memory as it is.
func downscaleVerdict(req *agentproto.Message, mem memInfo, floor uint64) error {
	if req.CPUs < 0 {
		return fmt.Errorf("downscale.cpus_target: %d is negative", req.CPUs)
	}
	target := req.MemoryBytes
	if target == 0 {
		return nil
	}
	if target < floor {
		return fmt.Errorf("downscale.memory_bytes: %s is below the guest's floor of %s (vertigo.memory_floor)",
			mib(target), mib(floor))
	}
	if need := mem.Used() + headroom; target < need {
		return fmt.Errorf("downscale.memory_bytes: %s is below the %s in use plus %s headroom",
			mib(target), mib(mem.Used()), mib(headroom))
	}
	return nil
}

// loadSpecOf validates a load request against the guest's memory.
func loadSpecOf(req *agentproto.Message, mem memInfo) (loadSpec, error) {
	spec := loadSpec{Workers: req.CPUWorkers, Memory: req.MemoryBytes, Duration: time.Duration(req.DurationNs)}
	switch {
	case spec.Workers < 0 || spec.Workers > maxLoadWorkers:
		return loadSpec{}, fmt.Errorf("load.cpu_workers: %d is not within 0..%d", spec.Workers, maxLoadWorkers)
	case spec.Memory > mem.Total:
		return loadSpec{}, fmt.Errorf("load.memory_bytes: %s is more than the guest's %s",
			mib(spec.Memory), mib(mem.Total))
	case spec.Workers == 0 && spec.Memory == 0:
		return spec, nil // stops the running load
	case spec.Duration <= 0 || spec.Duration > maxLoadDuration:
		return loadSpec{}, fmt.Errorf("load.duration_ns: %d is not within 1ns..%v", req.DurationNs, maxLoadDuration)
	}
	return spec, nil
}

func (a *agent) startLoad(req *agentproto.Message) error {
	mem, err := a.sys.memInfo()
	if err != nil {
		return err
	}
	spec, err := loadSpecOf(req, mem)
	if err != nil {
		return err
	}
	if spec.Workers == 0 && spec.Memory == 0 {
		a.loads.stop()
		return nil
	}
	present, online, err := a.sys.cpus()
	if err != nil {
		return err
	}
	var cpus []int
	for _, c := range present {
		if online[c] {
			cpus = append(cpus, c)
		}
	}
	if err := a.loads.start(spec, cpus); err != nil {
		return err
	}
	a.log.printf("load: %d workers, %s, for %v", spec.Workers, mib(spec.Memory), spec.Duration)
	return nil
}

// reject answers a line that is not a valid request: a reply when it has an
// id, else a protocol_error event, so the plugin learns either way.
func (a *agent) reject(id uint64, err error) {
	a.log.error("request", err)
	if id > 0 {
		a.out.post(&agentproto.Message{Type: agentproto.TypeReply, ID: id, Error: err.Error()})
		return
	}
	ev := a.event(agentproto.EventProtocolError)
	ev.Error = err.Error()
	a.out.post(ev)
}

// idOf digs the id out of a line that failed validation; 0 if it has none.
func idOf(line string) uint64 {
	var probe struct {
		ID uint64 `json:"id"`
	}
	if json.Unmarshal([]byte(line), &probe) != nil {
		return 0
	}
	return probe.ID
}

// answer handles one well-formed message from the host.
func (a *agent) answer(m *agentproto.Message) {
	if m.Type != agentproto.TypeRequest {
		a.reject(m.ID, fmt.Errorf("type: the agent takes requests only, got %q", m.Type))
		return
	}
	a.out.post(a.handle(m))
}

// mib formats a guest-sized byte count; the agent stays free of the host's
// packages (and their gRPC dependencies) to keep the image small.
func mib(b uint64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }
