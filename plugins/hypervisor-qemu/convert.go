package main

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/fleet"
	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/vm"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

func sizeFrom(s *pb.Size) vm.Size {
	return vm.Size{VCPUMilli: s.GetVcpuMilli(), MemoryBytes: s.GetMemoryBytes()}
}

func sizeTo(s vm.Size) *pb.Size {
	return &pb.Size{VcpuMilli: s.VCPUMilli, MemoryBytes: s.MemoryBytes}
}

func specFrom(s *pb.VMSpec) vm.Spec {
	b := s.GetBounds()
	return vm.Spec{
		Name: s.GetName(), Node: s.GetNode(), Size: sizeFrom(s.GetSize()),
		Bounds: vm.Bounds{Min: sizeFrom(b.GetMin()), Max: sizeFrom(b.GetMax()), Unit: sizeFrom(b.GetUnit())},
		Tap:    s.GetTap(), MAC: s.GetMac(), NetNS: s.GetNetns(), IPCIDR: s.GetIpCidr(), Gateway: s.GetGateway(),
		Image: s.GetImage(),
	}
}

var states = map[vm.State]pb.VMState{
	vm.Starting:  pb.VMState_VM_STATE_STARTING,
	vm.Running:   pb.VMState_VM_STATE_RUNNING,
	vm.Migrating: pb.VMState_VM_STATE_MIGRATING,
	vm.Stopped:   pb.VMState_VM_STATE_STOPPED,
	vm.Failed:    pb.VMState_VM_STATE_FAILED,
}

func statusTo(s vm.Status) *pb.VMStatus {
	return &pb.VMStatus{Name: s.Name, Node: s.Node, State: states[s.State], Size: sizeTo(s.Size), Handle: s.Handle, Message: s.Message}
}

var phases = map[vm.Phase]pb.MigrationPhase{
	vm.Preparing:       pb.MigrationPhase_MIGRATION_PHASE_PREPARING,
	vm.Transferring:    pb.MigrationPhase_MIGRATION_PHASE_TRANSFERRING,
	vm.Completed:       pb.MigrationPhase_MIGRATION_PHASE_COMPLETED,
	vm.MigrationFailed: pb.MigrationPhase_MIGRATION_PHASE_FAILED,
	vm.Cancelled:       pb.MigrationPhase_MIGRATION_PHASE_CANCELLED,
}

func progressTo(p vm.Progress) *pb.MigrationProgress {
	return &pb.MigrationProgress{
		Phase:            phases[p.Phase],
		TransferredBytes: p.Transferred,
		RemainingBytes:   p.Remaining,
		BytesPerSecond:   p.BytesPerSecond,
		DowntimeNanos:    int64(p.Downtime),
		ElapsedNanos:     int64(p.Elapsed),
		Message:          p.Message,
	}
}

// errorTo gives an error the gRPC code the host acts on.
func errorTo(err error) error {
	if err == nil {
		return nil
	}
	code := codes.Internal
	switch {
	case errors.Is(err, vm.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, fleet.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, vm.ErrNotRunning), errors.Is(err, errNotConfigured), errors.Is(err, errors.ErrUnsupported):
		code = codes.FailedPrecondition
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	return status.Error(code, err.Error())
}
