package vm

import (
	"cmp"
	"fmt"
	"slices"
)

// HotpluggableCPU is one entry of QMP's query-hotpluggable-cpus; QOMPath is
// empty while the slot is free.
type HotpluggableCPU struct {
	Type    string `json:"type"`
	QOMPath string `json:"qom-path,omitempty"`
	Props   struct {
		SocketID int `json:"socket-id"`
		CoreID   int `json:"core-id"`
		ThreadID int `json:"thread-id"`
	} `json:"props"`
}

// CPUSlot is a hotplugged vCPU: what device_add was given, so a migration
// destination can be given the same.
type CPUSlot struct {
	ID       string `json:"id"`
	Driver   string `json:"driver"`
	SocketID int    `json:"socket_id"`
	CoreID   int    `json:"core_id"`
	ThreadID int    `json:"thread_id"`
}

// deviceAddArgs are device_add's arguments for the slot.
func (s CPUSlot) deviceAddArgs() map[string]any {
	return map[string]any{"driver": s.Driver, "id": s.ID, "socket-id": s.SocketID, "core-id": s.CoreID, "thread-id": s.ThreadID}
}

// cpuPlan gets a guest to a number of online vCPUs: plug what is missing,
// then have the agent online (or offline) to Online.
type cpuPlan struct {
	Online int
	Plug   []CPUSlot
}

// planCPUs plans for targetMilli thousandths of a vCPU when present vCPUs
// exist (booted or plugged) and slots lists QEMU's hotpluggable ones. vCPUs
// are never unplugged (QEMU 7.2 under TCG crashes on a re-plug after an
// unplug): a smaller target only offlines.
func planCPUs(targetMilli int64, present int, slots []HotpluggableCPU) (cpuPlan, error) {
	plan := cpuPlan{Online: cpusFor(targetMilli)}
	missing := plan.Online - present
	if missing <= 0 {
		return plan, nil
	}
	var free []HotpluggableCPU
	for _, s := range slots {
		if s.QOMPath == "" {
			free = append(free, s)
		}
	}
	if len(free) < missing {
		return cpuPlan{}, fmt.Errorf("%d vCPUs wanted, %d present and only %d hotpluggable slots free", plan.Online, present, len(free))
	}
	// Lowest ids first: the guest numbers CPUs in that order too.
	slices.SortFunc(free, func(a, b HotpluggableCPU) int {
		return cmp.Or(cmp.Compare(a.Props.SocketID, b.Props.SocketID), cmp.Compare(a.Props.CoreID, b.Props.CoreID), cmp.Compare(a.Props.ThreadID, b.Props.ThreadID))
	})
	for _, s := range free[:missing] {
		p := s.Props
		plan.Plug = append(plan.Plug, CPUSlot{
			ID:       fmt.Sprintf("cpu-s%d-c%d-t%d", p.SocketID, p.CoreID, p.ThreadID),
			Driver:   s.Type,
			SocketID: p.SocketID, CoreID: p.CoreID, ThreadID: p.ThreadID,
		})
	}
	return plan, nil
}

// effectiveMilli is the compute a guest with online vCPUs gets when its
// target is targetMilli: the quota trims the last vCPU when one is enforced.
func effectiveMilli(online int, targetMilli int64, quota bool) int64 {
	whole := int64(online) * 1000
	if quota {
		return min(whole, targetMilli)
	}
	return whole
}
