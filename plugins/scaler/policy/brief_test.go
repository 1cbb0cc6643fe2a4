package policy_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/plugins/scaler/policy"
)

// A brief decision (no reason wanted) is the same decision: over random
// windows, events, cache, database signals, refusals and empty windows, in
// every mode, only the reason differs, and it is empty.
func TestBriefDecidesTheSame(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, mode := range []policy.Mode{"", policy.ModeNeon, policy.ModePercentile, policy.ModePeak} {
		cfg := policy.DefaultConfig()
		cfg.Mode = mode
		for vm := range 24 {
			st := policy.State{}
			size := cu(1)
			refusals := uint32(0)
			for i := range 200 {
				now := t0.Add(time.Duration(i) * 30 * time.Second)
				w := policy.Window{}
				for k := range 12 {
					w.T = append(w.T, now.Add(time.Duration(k-11)*5*time.Second))
					w.Load1 = append(w.Load1, r.Float64()*float64(vm%7+1))
					w.CPUPressure = append(w.CPUPressure, max(0, r.Float64()*70-40))
					w.MemoryUsed = append(w.MemoryUsed, uint64(r.Float64()*float64(vm%5+1)*gib))
					w.MemoryPressure = append(w.MemoryPressure, max(0, r.Float64()*70-50))
					if vm%3 == 0 {
						w.DBActiveConnections = append(w.DBActiveConnections, uint32(r.IntN(9)))
						w.DBWorkingSet = append(w.DBWorkingSet, uint64(r.Float64()*3*gib))
					}
				}
				if r.IntN(30) == 0 {
					w = policy.Window{}
				}
				in := policy.Input{Now: now, Current: size, Bounds: quarterCU(), Metrics: w, State: st, Refusals: refusals, LastRefusal: now.Add(-time.Duration(r.IntN(600)) * time.Second)}
				if r.IntN(20) == 0 {
					in.Events = []policy.Event{{Type: policy.EventMemoryPressure, At: now, MemoryUsed: 2 * gib}}
				}
				if r.IntN(20) == 0 {
					in.Cache = []policy.CacheWindow{{Seconds: 60, Bytes: gib}, {Seconds: 300, Bytes: 3 * gib}}
				}
				o := policy.Decide(cfg, in)
				require.NotEmpty(t, o.Reason)
				in.Brief = true
				brief := policy.Decide(cfg, in)
				require.Empty(t, brief.Reason)
				brief.Reason = o.Reason
				require.Equal(t, o, brief, "mode %q, vm %d, step %d", mode, vm, i)
				st, size = o.State, o.Goal
				if r.IntN(10) == 0 {
					refusals++
				} else if r.IntN(5) == 0 {
					refusals = 0
				}
			}
		}
	}
}
