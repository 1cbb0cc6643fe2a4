package daemon

import (
	"context"
	"time"

	"github.com/vertigo-autoscaler/vertigo/host/api"
	"github.com/vertigo-autoscaler/vertigo/host/history"
)

// recordHistory adds what a status shows to the history behind the web
// page: a point per VM, its last decision and the migrations the loop
// keeps. Both record only what is new, so recording the same status twice
// changes nothing.
func (h *Host) recordHistory(st api.Status) {
	for _, vm := range st.VMs {
		p := history.Point{At: st.Time, Node: vm.Node, Phase: vm.Phase, Size: vm.Size, Reserved: vm.Reserved}
		if h.guests != nil {
			// The guest buffer rather than st.Usage: it has the pressure too.
			if s, ok := h.guests.Latest(vm.Name); ok {
				p.Usage = &history.Usage{
					OnlineVCPUMilli: s.OnlineVCPUMilli, OnlineMemory: s.OnlineMemory,
					Load1: s.Load1, MemoryUsed: s.MemoryUsed,
					CPUPressure: s.CPUPressure, MemoryPressure: s.MemoryPressure,
				}
			}
		}
		h.history.AddPoint(vm.Name, p)
		if d := vm.LastDecision; d != nil {
			h.history.AddDecision(vm.Name, *d)
		}
	}
	for _, m := range st.Migrations {
		h.history.AddMigration(m.VM, history.Migration{
			At: st.Time, From: m.From, To: m.To, Reason: m.Reason, State: m.State, Error: m.Error,
			ElapsedNanos: m.ElapsedNanos, DowntimeNanos: m.DowntimeNanos, TransferredBytes: m.TransferredBytes,
		})
	}
}

// recordNow records the fleet as it is, after something that changed it
// outside a pass (a pressure-triggered decision, an operator's migration).
func (h *Host) recordNow(ctx context.Context) {
	if st, err := h.Status(ctx); err == nil {
		h.recordHistory(st)
	}
}

// History implements api.Backend.
func (h *Host) History(_ context.Context, since time.Time) (history.Snapshot, error) {
	return h.history.Since(since), nil
}
