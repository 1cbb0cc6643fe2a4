package control

import (
	"fmt"

	"github.com/vertigo-autoscaler/vertigo/host/model"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// maxScalerState bounds the opaque state a scaler may ask the host to keep
// per VM, so a faulty plugin cannot grow the store without limit.
const maxScalerState = 64 << 10

// goal is a scaler decision the host has checked.
type goal struct {
	size    model.Size
	reason  string
	state   []byte
	force   bool
	clamped string // why the host changed the plugin's goal, if it did
}

// checkDecisions matches the scaler's reply to the VMs asked about. A reply
// the host cannot trust for a VM (missing, duplicated, nonsensical) leaves
// that VM as it is; a goal outside the VM's bounds is clamped. Problems are
// returned so they are logged and counted, never silently dropped. A
// missing reason is said to be missing when reasons were asked for.
func checkDecisions(vms []model.VM, resp *pb.DecideResponse, reasons bool) (map[string]goal, []string) {
	byName := make(map[string]*model.VM, len(vms))
	for i := range vms {
		byName[vms[i].Name] = &vms[i]
	}
	var problems []string
	seen := map[string]int{}
	for _, d := range resp.GetDecisions() {
		seen[d.GetVm()]++
	}
	reported := map[string]bool{}
	out := make(map[string]goal, len(vms))
	for i, d := range resp.GetDecisions() {
		vm, known := byName[d.GetVm()]
		switch {
		case !known:
			problems = append(problems, fmt.Sprintf("decisions[%d].vm: %q was not asked about", i, d.GetVm()))
			continue
		case seen[d.GetVm()] > 1:
			if !reported[d.GetVm()] {
				problems = append(problems, fmt.Sprintf("decisions[%d].vm: %q decided %d times; ignoring all", i, d.GetVm(), seen[d.GetVm()]))
				reported[d.GetVm()] = true
			}
			continue
		case d.GetGoal() == nil:
			problems = append(problems, fmt.Sprintf("decisions[%d].goal: missing for %q", i, d.GetVm()))
			continue
		case d.GetGoal().GetVcpuMilli() <= 0 || d.GetGoal().GetMemoryBytes() == 0:
			problems = append(problems, fmt.Sprintf("decisions[%d].goal: %d mvCPU / %d bytes for %q is not a size", i, d.GetGoal().GetVcpuMilli(), d.GetGoal().GetMemoryBytes(), d.GetVm()))
			continue
		}
		g := goal{size: model.SizeFrom(d.GetGoal()), reason: d.GetReason(), state: d.GetState(), force: d.GetForceDownscale()}
		if g.reason == "" && reasons {
			g.reason = "(the scaler gave no reason)"
		}
		if len(g.state) > maxScalerState {
			problems = append(problems, fmt.Sprintf("decisions[%d].state: %d bytes for %q exceeds %d; keeping the previous state", i, len(g.state), d.GetVm(), maxScalerState))
			g.state = vm.ScalerState
		}
		if fixed := fit(g.size, vm.Bounds); fixed != g.size {
			g.clamped = fmt.Sprintf("scaler asked %s, outside bounds %s..%s in units of %s; using %s", g.size, vm.Bounds.Min, vm.Bounds.Max, vm.Bounds.Unit, fixed)
			g.size = fixed
		}
		out[vm.Name] = g
	}
	for _, vm := range vms {
		if _, ok := out[vm.Name]; !ok && seen[vm.Name] == 0 {
			// Only VMs the reply does not mention at all; the others had a
			// problem reported above.
			problems = append(problems, fmt.Sprintf("no decision for %q; leaving it as it is", vm.Name))
		}
	}
	return out, problems
}

// fit rounds s up to the unit and clamps it to the bounds, per dimension.
// Max is allowed even when it is not a multiple of the unit.
func fit(s model.Size, b model.Bounds) model.Size {
	return model.Size{
		VCPUMilli:   fitDim(s.VCPUMilli, b.Min.VCPUMilli, b.Max.VCPUMilli, b.Unit.VCPUMilli),
		MemoryBytes: uint64(fitDim(int64(s.MemoryBytes), int64(b.Min.MemoryBytes), int64(b.Max.MemoryBytes), int64(b.Unit.MemoryBytes))),
	}
}

func fitDim(v, lo, hi, unit int64) int64 {
	if unit > 0 && v%unit != 0 {
		v = (v/unit + 1) * unit
	}
	return max(lo, min(v, hi))
}
