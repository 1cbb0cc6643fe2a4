package policy

// Peak is the peak mode's memory of a VM: the highest load1 and used memory
// it has ever reported.
type Peak struct {
	Load float64 `json:"l,omitempty"`
	Used uint64  `json:"u,omitempty"`
	// CPUSeen and MemSeen tell a peak of zero from no sample at all.
	CPUSeen bool `json:"cs,omitempty"`
	MemSeen bool `json:"ms,omitempty"`
}

// decidePeak is static provisioning for the peak, learnt online: each
// dimension is sized, with the shared targets, for the highest need the VM
// has shown so far, and never shrinks. Over a long replay it converges to
// the static size an operator would pick with hindsight; until the peak has
// been seen once, it is under that size.
func decidePeak(cfg Config, in Input) Output {
	st := in.State
	p := Peak{}
	if st.Peak != nil {
		p = *st.Peak
	}
	for _, l := range in.Metrics.Load1 {
		p.Load, p.CPUSeen = max(p.Load, l), true
	}
	for _, u := range in.Metrics.MemoryUsed {
		p.Used, p.MemSeen = max(p.Used, u), true
	}
	st.Peak = &p
	cpu, mem := cpuDim(in), memDim(in)
	c, m := cpu.held(), mem.held()
	if p.CPUSeen {
		c = cpu.fit(p.Load / cfg.CPUTargetLoad * 1000)
	}
	if p.MemSeen {
		m = mem.fit((float64(p.Used) + float64(cfg.MemoryHeadroom)) / cfg.MemoryTargetUsage)
	}
	reason := say(in.Brief, func() string {
		cwhy := "cpu: no samples, hold " + cpu.format(c)
		if p.CPUSeen {
			cwhy = "cpu: peak load1 " + fixed(p.Load, 2) + "/" + fixed(cfg.CPUTargetLoad, 2) + " -> " + cpu.format(c) + " vCPU"
		}
		mwhy := "mem: no samples, hold " + mem.format(m)
		if p.MemSeen {
			mwhy = "mem: peak used " + formatBytes(float64(p.Used)) + "+" + formatBytes(float64(cfg.MemoryHeadroom)) + "/" + fixed(cfg.MemoryTargetUsage, 2) + " -> " + mem.format(m)
		}
		return "peak: " + cwhy + "; " + mwhy
	})
	return Output{Goal: sizeOf(c, m), Reason: reason, State: st}
}
