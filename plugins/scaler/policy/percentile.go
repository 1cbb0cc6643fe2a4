package policy

// VPA's fixed percentiles for the range a current size may stay in; the
// target percentile is configurable.
const (
	vpaLowerPercentile = 0.5
	vpaUpperPercentile = 0.95
)

// Usage is the percentile mode's memory of a VM: a decaying histogram of
// load1, and one of used memory's peaks per interval (VPA sizes memory for
// peaks, not for samples).
type Usage struct {
	CPU histogram `json:"c"`
	Mem histogram `json:"m"`
	// Last is the newest sample recorded: windows overlap from one decision
	// to the next, and a sample must count once.
	Last int64 `json:"t"`
	// PeakStart and Peak are the memory-peak interval in progress (0: none).
	PeakStart int64  `json:"ps,omitempty"`
	Peak      uint64 `json:"pk,omitempty"`
}

func (u *Usage) clone() *Usage {
	c := *u
	c.CPU, c.Mem = u.CPU.clone(), u.Mem.clone()
	return &c
}

// observe records the window's samples newer than the last recorded.
func (u *Usage) observe(cfg Config, w Window) {
	for i, t := range w.T {
		at := t.UnixNano()
		if at <= u.Last {
			continue
		}
		u.Last = at
		if len(w.Load1) > 0 {
			u.CPU.add(cpuBuckets, w.Load1[i]*1000, at, cfg.PercentileHalfLife)
		}
		if len(w.MemoryUsed) > 0 {
			u.observeMemory(cfg, w.MemoryUsed[i], at)
		}
	}
}

// observeMemory keeps the running peak of the current interval and files
// it, weighted at the interval's start, once the interval is over.
func (u *Usage) observeMemory(cfg Config, used uint64, at int64) {
	if u.PeakStart != 0 && at-u.PeakStart >= int64(cfg.PercentileMemoryPeakInterval) {
		u.Mem.add(memBuckets, float64(u.Peak), u.PeakStart, cfg.PercentileHalfLife)
		u.PeakStart, u.Peak = 0, 0
	}
	if u.PeakStart == 0 {
		u.PeakStart = at
	}
	u.Peak = max(u.Peak, used)
}

// memory is the peaks' histogram with the interval in progress counted, as
// VPA counts it: a peak today must not wait for tomorrow.
func (u *Usage) memory(cfg Config) histogram {
	h := u.Mem.clone()
	if u.PeakStart != 0 {
		h.add(memBuckets, float64(u.Peak), u.PeakStart, cfg.PercentileHalfLife)
	}
	return h
}

// decidePercentile is a VPA-style recommender: the target is a percentile
// of the usage history plus a safety margin, and, like VPA's updater, a VM
// is resized to it only when its current size leaves the range between the
// 50th and 95th percentiles (plus the margin). CPU and memory move
// independently; pressure events and refusals play no part.
func decidePercentile(cfg Config, in Input) Output {
	st := in.State
	if st.Usage == nil {
		st.Usage = &Usage{}
	} else {
		st.Usage = st.Usage.clone()
	}
	st.Usage.observe(cfg, in.Metrics)
	mem := st.Usage.memory(cfg)
	c, cwhy := cpuDim(in).recommend(cfg, &st.Usage.CPU, cpuBuckets)
	m, mwhy := memDim(in).recommend(cfg, &mem, memBuckets)
	return Output{Goal: sizeOf(c, m), Reason: say(in.Brief, func() string { return "percentile: " + cwhy + "; " + mwhy }), State: st}
}

// recommend is the VPA rule for one dimension.
func (d dim) recommend(cfg Config, h *histogram, b bucketing) (float64, string) {
	held := d.held()
	at := func(p float64) float64 {
		v, _ := h.percentile(b, p)
		return d.fit(v * (1 + cfg.PercentileMargin))
	}
	if _, ok := h.percentile(b, cfg.PercentileTarget); !ok {
		return held, say(d.brief, func() string { return d.name + ": no samples, hold " + d.format(held) })
	}
	lower, target, upper := at(vpaLowerPercentile), at(cfg.PercentileTarget), at(max(vpaUpperPercentile, cfg.PercentileTarget))
	out := held < lower || held > upper
	why := say(d.brief, func() string {
		why := d.name + ": p" + general(100*cfg.PercentileTarget, -1) + " " + d.format(target/(1+cfg.PercentileMargin)) +
			" +" + general(100*cfg.PercentileMargin, -1) + "% -> " + d.format(target) + ", keep in [" + d.format(lower) + ", " + d.format(upper) + "]"
		if out {
			return why + ", " + d.format(held) + " out of range"
		}
		return why + ", hold " + d.format(held)
	})
	if out {
		return target, why
	}
	return held, why
}
