package policy

import (
	"fmt"
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
	consider := func(cu float64, why string) {
		parts = append(parts, why)
		goal, have = max(goal, cu), true
	}
	if load, ok := last(in.Metrics.Load1); ok {
		consider(load/cfg.CPUTargetLoad/cfg.NeonCUVCPUs,
			fmt.Sprintf("cpu load1 %.2f/%.2f/%.4g vCPU = %.3f CU", load, cfg.CPUTargetLoad, cfg.NeonCUVCPUs, load/cfg.CPUTargetLoad/cfg.NeonCUVCPUs))
	}
	latest, ok := last(in.Metrics.MemoryUsed)
	if used, ok := reportedUsed(latest, ok, events); ok {
		cu := (used + float64(cfg.MemoryHeadroom)) / cfg.MemoryTargetUsage / cuMem
		consider(cu, fmt.Sprintf("mem (%s+%s)/%.2f/%s = %.3f CU", formatBytes(used), formatBytes(float64(cfg.MemoryHeadroom)), cfg.MemoryTargetUsage, formatBytes(cuMem), cu))
	}
	if ws, ok := workingSet(in.Cache, cfg.CacheSlopeCut, cfg.CacheProjectionSteps); ok {
		cu := ws / cfg.CacheTargetUsage / cuMem
		consider(cu, fmt.Sprintf("cache %s/%.2f/%s = %.3f CU", formatBytes(ws), cfg.CacheTargetUsage, formatBytes(cuMem), cu))
	}
	// The monitor's request is an upscale by one compute unit over the
	// current size, whatever the periodic metrics say.
	if hasEvent(events, EventMemoryPressure) {
		consider(current+1, fmt.Sprintf("memory pressure event: %.3f+1 CU", current))
	}
	if !have {
		return Output{
			Goal:   sizeOf(cpu.held(), mem.held()),
			Reason: fmt.Sprintf("neon: no samples, hold %s vCPU/%s", formatVCPU(cpu.held()), formatBytes(mem.held())),
			State:  st,
		}
	}
	if floor := current - neonMaxDownscaleCU; goal < floor {
		parts = append(parts, fmt.Sprintf("downscale limited to %d CU below %.3f", neonMaxDownscaleCU, current))
		goal = floor
	}
	rounded := math.Ceil(goal/neonCUStep-1e-9) * neonCUStep
	vcpu, memory := cpu.fit(rounded*cuVCPU), mem.fit(rounded*cuMem)
	reason := fmt.Sprintf("neon: %s; goal %.3f -> %.4g CU -> %s vCPU/%s",
		strings.Join(parts, ", "), goal, rounded, formatVCPU(vcpu), formatBytes(memory))
	if in.Refusals > 0 {
		reason += fmt.Sprintf("; %d refusals: the guest may veto (neon never forces)", in.Refusals)
	}
	return Output{Goal: sizeOf(vcpu, memory), Reason: reason, State: st}
}
