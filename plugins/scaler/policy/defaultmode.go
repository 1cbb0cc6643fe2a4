package policy

import "time"

// decideDefault scales vCPUs and memory independently: a memory-hungry
// Postgres gets memory without paying for vCPUs it does not use.
func decideDefault(cfg Config, in Input) Output {
	events, seen := freshEvents(in.Events, in.State.EventsSeen)
	st := in.State
	st.EventsSeen = seen
	g := refusalGate(cfg, in)
	cpu, mem := cpuDim(in), memDim(in)
	c := cpu.settle(cfg, cpuWant(cfg, in, cpu, events), &st.CPU, in.Now, g, cfg.MaxDownscaleStepUnitsCPU)
	m := mem.settle(cfg, memWant(cfg, in, mem, events), &st.Memory, in.Now, g, cfg.MaxDownscaleStepUnitsMemory)
	return Output{
		Goal:           sizeOf(c.goal, m.goal),
		Reason:         say(in.Brief, func() string { return c.why + "; " + m.why }),
		State:          st,
		ForceDownscale: g.force && (c.down || m.down),
	}
}

// want is what a dimension's signals ask for, before rounding.
type want struct {
	base float64 // milli-vCPU or bytes
	ok   bool    // false: no signal at all, so hold
	why  string  // the dominating signal with its numbers
}

// cpuWant sizes vCPUs for load1 or, when it is rising, for where its trend
// will be a horizon from now: the resize then lands before the load does.
func cpuWant(cfg Config, in Input, d dim, events []Event) want {
	var w want
	if load, ok := last(in.Metrics.Load1); ok {
		sig, trended := load, false
		if trend, ok := loadTrend(in.Metrics, cfg.CPUTrendHorizon); ok && trend > load {
			sig, trended = trend, true
		}
		need := sig / cfg.CPUTargetLoad * 1000
		w = want{base: need, ok: true, why: say(d.brief, func() string {
			name := "load1"
			if trended {
				name = "load1 trend +" + cfg.CPUTrendHorizon.String()
			}
			return name + " " + fixed(sig, 2) + "/" + fixed(cfg.CPUTargetLoad, 2) + " -> " + formatVCPU(need) + " vCPU"
		})}
	}
	w = w.atLeast(dbCPUWant(cfg, in.Metrics, d.brief))
	psi, _ := last(in.Metrics.CPUPressure)
	return w.pressed(d, psi, cfg.CPUPressureThreshold, hasEvent(events, EventCPUPressure))
}

// memWant sizes memory for the most used within the window plus headroom,
// or for the cache's working set when that needs more. The peak, not the
// latest sample: a database's memory need is its peak (sorts, hash joins),
// running short costs an OOM kill where a spare gigabyte costs little, and
// a memory resize is slow.
func memWant(cfg Config, in Input, d dim, events []Event) want {
	var w want
	used, ok := peak(in.Metrics.MemoryUsed)
	if used, ok := reportedUsed(used, ok, events); ok {
		need := (used + float64(cfg.MemoryHeadroom)) / cfg.MemoryTargetUsage
		w = want{base: need, ok: true, why: say(d.brief, func() string {
			return "peak used " + formatBytes(used) + "+" +
				formatBytes(float64(cfg.MemoryHeadroom)) + "/" + fixed(cfg.MemoryTargetUsage, 2) + " -> " + formatBytes(need)
		})}
	}
	if ws, ok := workingSet(in.Cache, cfg.CacheSlopeCut, cfg.CacheProjectionSteps); ok {
		if need := ws / cfg.CacheTargetUsage; !w.ok || need > w.base {
			w = want{base: need, ok: true, why: say(d.brief, func() string {
				return "cache working set " + formatBytes(ws) + "/" + fixed(cfg.CacheTargetUsage, 2) + " -> " + formatBytes(need)
			})}
		}
	}
	w = w.atLeast(dbMemoryWant(cfg, in.Metrics, d.brief))
	psi, _ := last(in.Metrics.MemoryPressure)
	return w.pressed(d, psi, cfg.MemoryPressureThreshold, hasEvent(events, EventMemoryPressure))
}

// pressed raises w when the guest stalls, whatever the other signals say:
// by at least one unit, and by the stalled fraction of the current size (a
// guest stalled 30% of the time asks for 30% more).
func (w want) pressed(d dim, psi, threshold float64, event bool) want {
	if psi <= threshold && !event {
		return w
	}
	held := d.held()
	scaled := held * (1 + psi/100)
	need := max(held+d.unit, scaled)
	if w.ok && w.base >= need {
		return w
	}
	return want{base: need, ok: true, why: say(d.brief, func() string {
		if psi <= threshold {
			return "pressure event -> " + d.format(held) + "+1 unit"
		}
		why := "psi " + fixed(psi, 1) + "% > " + general(threshold, 4) + "% -> " + d.format(held) + " x " + fixed(1+psi/100, 3) + " = " + d.format(scaled)
		if need > scaled {
			why += ", at least +1 unit"
		}
		return why
	})}
}

// move is what one dimension does this tick.
type move struct {
	goal float64
	down bool
	why  string
}

// settle turns a dimension's want into its goal: up at once; down only once
// the lower goal has held for the stabilization period, outside the
// cooldown after an upscale and the refusal back-off, below the hysteresis
// band, and by a limited step.
func (d dim) settle(cfg Config, w want, ds *DimState, now time.Time, g gate, maxStep int) move {
	held := d.held()
	if !w.ok {
		ds.LowSince, ds.LowPeak = 0, 0
		return move{goal: held, why: say(d.brief, func() string { return d.name + ": no samples, hold " + d.format(held) })}
	}
	target := d.fit(w.base)
	head := func() string { return d.name + ": " + w.why + " -> " + d.format(target) }
	switch {
	case target > held:
		*ds = DimState{LastUpscale: now.UnixNano()}
		return move{goal: target, why: say(d.brief, func() string { return head() + ", up from " + d.format(d.cur) })}
	case target == held:
		ds.LowSince, ds.LowPeak = 0, 0
		return move{goal: held, why: say(d.brief, func() string { return head() + ", hold" })}
	case target > held-d.unit || target > held*(1-cfg.DownscaleMargin):
		ds.LowSince, ds.LowPeak = 0, 0
		return move{goal: held, why: say(d.brief, func() string {
			return head() + ", hold " + d.format(held) + " (within the " + fixed(cfg.DownscaleMargin*100, 0) + "% downscale margin)"
		})}
	}

	// A peak at or above the current size is left over from before the
	// last step: the lower goal is judged afresh.
	if ds.LowSince == 0 || ds.LowPeak >= held {
		ds.LowSince, ds.LowPeak = now.UnixNano(), target
	}
	ds.LowPeak = max(ds.LowPeak, target)
	hold := func(cond func() string) move {
		return move{goal: held, why: say(d.brief, func() string { return head() + ", hold " + d.format(held) + " (" + cond() + ")" })}
	}
	low := since(now, ds.LowSince)
	if low < cfg.DownscaleStabilization {
		return hold(func() string { return "low for " + low.String() + " of " + cfg.DownscaleStabilization.String() })
	}
	if ds.LastUpscale != 0 {
		if up := since(now, ds.LastUpscale); up < cfg.DownscaleCooldownAfterUpscale {
			return hold(func() string {
				return "upscaled " + up.String() + " ago, cooldown " + cfg.DownscaleCooldownAfterUpscale.String()
			})
		}
	}
	if !g.open {
		return hold(func() string { return g.why })
	}
	steps := maxStep
	if g.force {
		steps = 1
	}
	goal := max(ds.LowPeak, d.fit(held-float64(steps)*d.unit))
	why := say(d.brief, func() string {
		why := head() + ", down from " + d.format(d.cur) + " to " + d.format(goal) + " (highest goal over " + low.String() + " low; at most " + itoa(steps) + " units a step)"
		if g.why != "" {
			why += "; " + g.why
		}
		return why
	})
	// The next step must earn its own stabilization period.
	ds.LowSince, ds.LowPeak = now.UnixNano(), target
	return move{goal: goal, down: true, why: why}
}

// gate is the refusal back-off every downscale passes.
type gate struct {
	open  bool
	force bool
	why   string
}

// refusalGate waits refusal_backoff after a refusal, doubling per
// consecutive refusal up to refusal_backoff_max. After max_refusals it
// forces a one-unit step: a guest cannot pin a VM at its peak size forever,
// which is Neon's open issue #554.
func refusalGate(cfg Config, in Input) gate {
	n := in.Refusals
	if n == 0 {
		return gate{open: true}
	}
	wait := backoff(cfg.RefusalBackoff, cfg.RefusalBackoffMax, n)
	if left := wait - in.Now.Sub(in.LastRefusal); left > 0 {
		return gate{why: say(in.Brief, func() string {
			return "guest refused " + itoa(n) + " times, back-off " + wait.String() + ", next try in " + left.String()
		})}
	}
	if n >= cfg.MaxRefusals {
		return gate{open: true, force: true, why: say(in.Brief, func() string { return "forced one-unit step after " + itoa(n) + " refusals: the guest may not veto" })}
	}
	return gate{open: true, why: say(in.Brief, func() string { return "retry after " + itoa(n) + " refusals" })}
}

// backoff is base doubled for each refusal after the first, capped at most.
func backoff(base, most time.Duration, refusals uint32) time.Duration {
	wait := base
	for i := uint32(1); i < refusals && wait > 0 && wait < most; i++ {
		wait += min(wait, most-wait) // doubles, without overflowing past most
	}
	return min(wait, most)
}
