package policy

import (
	"math"
	"strings"
)

// Neon's fixed rules (anchors.md): goals are rounded up to a quarter of a
// compute unit, and a decision drops at most one compute unit.
const (
	neonCUStep         = 0.25
	neonMaxDownscaleCU = 1
)

// decideNeon reproduces Neon's autoscaler-agent: the goal, in compute units
// (CU), is the largest of the CPU, memory and cache goals; vCPUs and memory
// move together. It reacts to the guest monitor's memory-pressure request,
// ignores CPU pressure, and never forces a downscale the guest refuses.
func decideNeon(cfg Config, in Input) Output {
	events, seen := freshEvents(in.Events, in.State.EventsSeen)
	st := in.State
	st.EventsSeen = seen
	cpu, mem := cpuDim(in), memDim(in)
	cuVCPU := cfg.NeonCUVCPUs * 1000
	cuMem := float64(cfg.NeonCUMemory)
	current := max(cpu.cur/cuVCPU, mem.cur/cuMem)

	var parts []string
	goal, have := 0.0, false
	consider := func(cu float64, why func() string) {
		if !in.Brief {
			parts = append(parts, why())
		}
		goal, have = max(goal, cu), true
	}
	if load, ok := last(in.Metrics.Load1); ok {
		cu := load / cfg.CPUTargetLoad / cfg.NeonCUVCPUs
		consider(cu, func() string {
			return "cpu load1 " + fixed(load, 2) + "/" + fixed(cfg.CPUTargetLoad, 2) + "/" + general(cfg.NeonCUVCPUs, 4) + " vCPU = " + fixed(cu, 3) + " CU"
		})
	}
	latest, ok := last(in.Metrics.MemoryUsed)
	if used, ok := reportedUsed(latest, ok, events); ok {
		cu := (used + float64(cfg.MemoryHeadroom)) / cfg.MemoryTargetUsage / cuMem
		consider(cu, func() string {
			return "mem (" + formatBytes(used) + "+" + formatBytes(float64(cfg.MemoryHeadroom)) + ")/" + fixed(cfg.MemoryTargetUsage, 2) + "/" + formatBytes(cuMem) + " = " + fixed(cu, 3) + " CU"
		})
	}
	if ws, ok := workingSet(in.Cache, cfg.CacheSlopeCut, cfg.CacheProjectionSteps); ok {
		cu := ws / cfg.CacheTargetUsage / cuMem
		consider(cu, func() string {
			return "cache " + formatBytes(ws) + "/" + fixed(cfg.CacheTargetUsage, 2) + "/" + formatBytes(cuMem) + " = " + fixed(cu, 3) + " CU"
		})
	}
	// The monitor's request is an upscale by one compute unit over the
	// current size, whatever the periodic metrics say.
	if hasEvent(events, EventMemoryPressure) {
		consider(current+1, func() string { return "memory pressure event: " + fixed(current, 3) + "+1 CU" })
	}
	if !have {
		return Output{
			Goal: sizeOf(cpu.held(), mem.held()),
			Reason: say(in.Brief, func() string {
				return "neon: no samples, hold " + formatVCPU(cpu.held()) + " vCPU/" + formatBytes(mem.held())
			}),
			State: st,
		}
	}
	if floor := current - neonMaxDownscaleCU; goal < floor {
		consider(floor, func() string {
			return "downscale limited to " + itoa(neonMaxDownscaleCU) + " CU below " + fixed(current, 3)
		})
	}
	rounded := math.Ceil(goal/neonCUStep-1e-9) * neonCUStep
	vcpu, memory := cpu.fit(rounded*cuVCPU), mem.fit(rounded*cuMem)
	reason := say(in.Brief, func() string {
		reason := "neon: " + strings.Join(parts, ", ") + "; goal " + fixed(goal, 3) + " -> " + general(rounded, 4) +
			" CU -> " + formatVCPU(vcpu) + " vCPU/" + formatBytes(memory)
		if in.Refusals > 0 {
			reason += "; " + itoa(in.Refusals) + " refusals: the guest may veto (neon never forces)"
		}
		return reason
	})
	return Output{Goal: sizeOf(vcpu, memory), Reason: reason, State: st}
}
