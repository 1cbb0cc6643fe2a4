// Package model holds the host's view of a fleet: nodes, VMs and their
// sizes. It is plain data shared by config, store, control loop and API;
// it converts to and from the plugin protocol at the edges.
package model

import (
	"fmt"
	"time"

	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// Size is a VM's compute size; vCPUs are in thousandths.
type Size struct {
	VCPUMilli   int64  `json:"vcpu_milli"`
	MemoryBytes uint64 `json:"memory_bytes"`
}

func (s Size) String() string {
	return fmt.Sprintf("%.3g vCPU/%s", float64(s.VCPUMilli)/1000, FormatBytes(s.MemoryBytes))
}

// Fits reports whether s fits within limit in both dimensions.
func (s Size) Fits(limit Size) bool {
	return s.VCPUMilli <= limit.VCPUMilli && s.MemoryBytes <= limit.MemoryBytes
}

// Proto converts to the wire type.
func (s Size) Proto() *pb.Size { return &pb.Size{VcpuMilli: s.VCPUMilli, MemoryBytes: s.MemoryBytes} }

// SizeFrom converts from the wire type; a nil size is zero.
func SizeFrom(p *pb.Size) Size {
	return Size{VCPUMilli: p.GetVcpuMilli(), MemoryBytes: p.GetMemoryBytes()}
}

// Bounds limit what the scaler may aim for; Unit is the scaling step.
type Bounds struct {
	Min  Size `json:"min"`
	Max  Size `json:"max"`
	Unit Size `json:"unit"`
}

// Proto converts to the wire type.
func (b Bounds) Proto() *pb.Bounds {
	return &pb.Bounds{Min: b.Min.Proto(), Max: b.Max.Proto(), Unit: b.Unit.Proto()}
}

// Node is one node of the fleet and its capacity.
type Node struct {
	Name      string  `json:"name"`
	Capacity  Size    `json:"capacity"`
	Watermark float64 `json:"watermark"`
	// Version is the store's optimistic-concurrency version (0: not stored).
	Version uint64 `json:"version"`
}

// Proto converts to the wire type.
func (n Node) Proto() *pb.NodeSpec {
	return &pb.NodeSpec{Name: n.Name, Capacity: n.Capacity.Proto(), Watermark: n.Watermark}
}

// Phase is where a VM is in its life.
type Phase string

const (
	// PhaseDeclared: in the config, placed and accounted, but no hypervisor
	// runs it (none is configured).
	PhaseDeclared  Phase = "declared"
	PhasePending   Phase = "pending" // fits on no node yet
	PhaseRunning   Phase = "running"
	PhaseMigrating Phase = "migrating"
	PhaseStopped   Phase = "stopped"
	PhaseFailed    Phase = "failed"
)

// Decision is the last thing the control loop decided for a VM, for
// operators (status) and for the scaler's hysteresis (ScalerState).
type Decision struct {
	At      time.Time `json:"at"`
	Goal    Size      `json:"goal"`
	Reason  string    `json:"reason"`
	Outcome string    `json:"outcome"`
}

// VM is one VM's desired and observed state.
type VM struct {
	Name   string `json:"name"`
	Node   string `json:"node"`
	Phase  Phase  `json:"phase"`
	Bounds Bounds `json:"bounds"`
	// Reserved is what placement has granted; Size is what the VM has.
	// They differ only while a resize is in flight.
	Reserved Size `json:"reserved"`
	Size     Size `json:"size"`
	// ScalerState is the scaler's opaque per-VM state, handed back on the
	// next decision so the scaler keeps no state of its own.
	ScalerState       []byte    `json:"scaler_state,omitempty"`
	DownscaleRefusals uint32    `json:"downscale_refusals"`
	LastRefusal       time.Time `json:"last_refusal"`
	LastDecision      *Decision `json:"last_decision,omitempty"`
	// Handle is the hypervisor plugin's opaque handle for recovery.
	Handle []byte `json:"handle,omitempty"`
	// Image is the guest image the hypervisor boots ("" = its default).
	Image string `json:"image,omitempty"`
	// Address is the VM's network address from the network plugin, kept
	// for the VM's whole life, across migrations.
	Address string `json:"address,omitempty"`
	Message string `json:"message,omitempty"`
	Version uint64 `json:"version"`
}

// Placement is the VM as placement sees it.
func (v VM) Placement() *pb.VMPlacement {
	return &pb.VMPlacement{Vm: v.Name, Node: v.Node, Reserved: v.Reserved.Proto(), Unit: v.Bounds.Unit.Proto()}
}

// FormatBytes prints a size in binary units ("1.5GiB").
func FormatBytes(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%dB", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit && exp < 4; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.4g%ciB", float64(b)/float64(div), "KMGTP"[exp])
}
