package fleet

import (
	"fmt"
	"strings"
)

// Ask asks for a VM to grow to Want (the full size, not a delta).
type Ask struct {
	VM   string
	Want Size
}

// Grant is what an Ask got. Granted is the VM's reservation now.
type Grant struct {
	VM      string
	Granted Size
	// Partial is true when Granted is less than Want in some dimension.
	Partial bool
	Reason  string
}

// Grow grants each ask, in order, as much as fits on the VM's node, and
// reserves it at once. Per dimension the VM gets its reservation plus the
// largest multiple of its unit that fits the node's free capacity, capped at
// the wanted size (which is granted exactly when it fits, even when it is not
// a whole number of units away). A dimension already at or above the wanted
// size is left alone: decreases come through UpsertVM. Growth may go above
// the watermark, up to capacity; the migration plan then moves VMs away.
//
// Asking again for the same size grants the same size and reserves nothing
// more. An unknown VM is granted nothing, with a reason, rather than failing
// the batch; only malformed asks make Grow fail, before anything is granted.
func (f *Fleet) Grow(asks []Ask) ([]Grant, error) {
	for i, a := range asks {
		if inv := a.validate(); inv != nil {
			return nil, inv.In(fmt.Sprintf("asks[%d]", i))
		}
	}
	grants := make([]Grant, len(asks))
	for i, a := range asks {
		grants[i] = f.grow(a)
	}
	return grants, nil
}

func (f *Fleet) grow(a Ask) Grant {
	vm, ok := f.vms[a.VM]
	if !ok {
		return Grant{VM: a.VM, Partial: a.Want != Size{}, Reason: fmt.Sprintf("unknown vm %s: place it before growing it", a.VM)}
	}
	n := f.nodes[vm.Node]
	free := n.free()
	vcpu, vcpuShort := growDimension(vm.Reserved.VCPUMilli, a.Want.VCPUMilli, free.VCPUMilli, vm.Unit.VCPUMilli)
	mem, memShort := growDimension(vm.Reserved.MemoryBytes, a.Want.MemoryBytes, free.MemoryBytes, vm.Unit.MemoryBytes)
	granted := Size{VCPUMilli: vcpu, MemoryBytes: mem}

	var reason string
	switch {
	case vcpuShort || memShort:
		var short []string
		if vcpuShort {
			short = append(short, fmt.Sprintf("vCPU (%s free, unit %s)", formatVCPU(free.VCPUMilli), formatVCPU(vm.Unit.VCPUMilli)))
		}
		if memShort {
			short = append(short, fmt.Sprintf("memory (%s free, unit %s)", formatBytes(free.MemoryBytes), formatBytes(vm.Unit.MemoryBytes)))
		}
		reason = fmt.Sprintf("node %s is short of %s", n.spec.Name, strings.Join(short, " and "))
	case granted == vm.Reserved:
		reason = "nothing to grow: the reservation already covers want (decreases come through Apply)"
	default:
		reason = "granted in full on node " + n.spec.Name
	}

	n.reserved = n.reserved.add(granted.sub(vm.Reserved))
	vm.Reserved = granted
	return Grant{VM: a.VM, Granted: granted, Partial: vcpuShort || memShort, Reason: reason}
}

// growDimension returns the granted amount in one dimension and whether it
// falls short of want.
func growDimension[T int64 | uint64](reserved, want, free, unit T) (T, bool) {
	switch {
	case want <= reserved:
		return reserved, false
	case want-reserved <= free:
		return want, false
	}
	return reserved + free/unit*unit, true
}
