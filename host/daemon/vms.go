package daemon

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vertigo-autoscaler/vertigo/host/api"
	"github.com/vertigo-autoscaler/vertigo/host/model"
	"github.com/vertigo-autoscaler/vertigo/host/store"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// bootTimeout bounds StartVM beyond the call timeout: a guest boots in a
// few seconds under TCG, and the plugin waits for its agent.
const bootTimeout = 90 * time.Second

// stopGrace is how long a removed VM's guest gets to shut down.
const stopGrace = 10 * time.Second

// adoptVMs makes the hypervisor's VMs and the store agree, at start: a VM
// the plugin still runs (it outlived the host) is adopted as it is, where it
// is; a stored VM it does not run is started; a VM it runs that the fleet
// does not have is stopped.
func (h *Host) adoptVMs(ctx context.Context) error {
	listed, err := h.hv.ListVMs(ctx)
	if err != nil {
		return fmt.Errorf("listing the hypervisor's VMs: %w", err)
	}
	running := map[string]*pb.VMStatus{}
	for _, st := range listed {
		if st.GetState() == pb.VMState_VM_STATE_RUNNING || st.GetState() == pb.VMState_VM_STATE_MIGRATING {
			running[st.GetName()] = st
		}
	}
	vms, err := h.store.ListVMs(ctx)
	if err != nil {
		return err
	}
	for _, vm := range vms {
		st, ok := running[vm.Name]
		delete(running, vm.Name)
		switch {
		case ok:
			if err := h.adopt(ctx, vm, st); err != nil {
				return err
			}
		case vm.Node != "":
			if err := h.boot(ctx, vm); err != nil {
				return err
			}
		}
	}
	for name := range running {
		h.log.Warn("the hypervisor runs a VM the fleet does not have; stopping it", "vm", name)
		if err := h.hv.StopVM(ctx, name, stopGrace); err != nil {
			h.log.Error("stopping an unknown VM failed", "vm", name, "error", err)
		}
	}
	if h.net == nil {
		return nil
	}
	// Adoption may have followed VMs to other nodes: reread where they are.
	if vms, err = h.store.ListVMs(ctx); err != nil {
		return err
	}
	return h.reconcilePorts(ctx, vms)
}

// adopt records a VM found running. Where the hypervisor says it runs wins:
// a migration may have completed while no host was there to record it.
func (h *Host) adopt(ctx context.Context, vm model.VM, st *pb.VMStatus) error {
	if node := st.GetNode(); node != "" && node != vm.Node {
		h.log.Warn("vm runs on another node than recorded; following it", "vm", vm.Name, "recorded", vm.Node, "actual", node)
		vm.Node = node
		if err := apply(ctx, h.placement, &pb.PlacementEvent{Event: &pb.PlacementEvent_VmUpsert{VmUpsert: vm.Placement()}}); err != nil {
			return fmt.Errorf("vm %q runs on %s, which placement refuses: %w", vm.Name, node, err)
		}
	}
	if size := model.SizeFrom(st.GetSize()); size.VCPUMilli > 0 {
		vm.Size = size
	}
	vm.Phase, vm.Handle, vm.Message = model.PhaseRunning, st.GetHandle(), ""
	if _, err := h.store.PutVM(ctx, vm); err != nil {
		return fmt.Errorf("recording vm %q: %w", vm.Name, err)
	}
	h.log.Info("recovered a running VM", "vm", vm.Name, "node", vm.Node, "size", vm.Size)
	return nil
}

// boot starts a placed VM with its port on its node's network. A VM that
// fails to start is recorded as failed, not fatal; only failing to record
// that is.
func (h *Host) boot(ctx context.Context, vm model.VM) error {
	spec := &pb.VMSpec{Name: vm.Name, Node: vm.Node, Size: vm.Size.Proto(), Bounds: vm.Bounds.Proto(), Image: vm.Image}
	var err error
	if h.net != nil {
		var port *pb.Attachment
		if port, err = h.net.attach(ctx, vm.Name, vm.Node); err == nil {
			withPort(spec, port)
			vm.Address = port.GetIpCidr()
		}
	}
	var st *pb.VMStatus
	if err == nil {
		st, err = h.hv.StartVM(ctx, spec, bootTimeout)
	}
	if err != nil {
		h.log.Error("starting a VM failed", "vm", vm.Name, "node", vm.Node, "error", err)
		vm.Phase, vm.Message = model.PhaseFailed, "start failed: "+err.Error()
	} else {
		vm.Phase, vm.Handle, vm.Message = model.PhaseRunning, st.GetHandle(), ""
		h.log.Info("started a VM", "vm", vm.Name, "node", vm.Node, "size", vm.Size)
	}
	if _, err := h.store.PutVM(ctx, vm); err != nil {
		return fmt.Errorf("recording vm %s's start: %w", vm.Name, err)
	}
	return nil
}

// startPlaced boots VMs that were placed since the host started (they
// fitted nowhere before).
func (h *Host) startPlaced(ctx context.Context) error {
	vms, err := h.store.ListVMs(ctx)
	if err != nil {
		return err
	}
	for _, vm := range vms {
		if vm.Phase == model.PhaseDeclared && vm.Node != "" {
			if err := h.boot(ctx, vm); err != nil {
				return err
			}
		}
	}
	return nil
}

// LoadVM implements api.Backend.
func (h *Host) LoadVM(ctx context.Context, name string, req api.LoadRequest) error {
	if _, err := h.vm(ctx, name); err != nil {
		return err
	}
	if h.hv == nil {
		return fmt.Errorf("no hypervisor plugin is configured: vm %q does not run", name)
	}
	err := h.hv.GenerateLoad(ctx, &pb.GenerateLoadRequest{Name: name, CpuWorkers: req.CPUWorkers, MemoryBytes: req.MemoryBytes, DurationNanos: req.DurationNs})
	if s, ok := status.FromError(err); ok && s.Code() == codes.InvalidArgument {
		return fmt.Errorf("%s: %w", s.Message(), api.ErrInvalid)
	}
	return err
}

// MigrateVM implements api.Backend.
func (h *Host) MigrateVM(ctx context.Context, name, to string, progress func(api.Migration)) error {
	vm, err := h.vm(ctx, name)
	if err != nil {
		return err
	}
	from := vm.Node
	defer h.recordNow(context.WithoutCancel(ctx)) // the move's end, not the next pass's time
	report := func(state string, p *pb.MigrationProgress) {
		m := api.Migration{VM: name, From: from, To: to, Reason: "requested by an operator", State: state}
		fillProgress(&m, p)
		progress(m)
	}
	var last *pb.MigrationProgress
	err = h.ctrl.Migrate(ctx, name, to, func(p *pb.MigrationProgress) {
		last = p
		report("running", p)
	})
	if err != nil {
		return err
	}
	report("completed", last)
	return nil
}

func (h *Host) vm(ctx context.Context, name string) (model.VM, error) {
	vm, err := h.store.GetVM(ctx, name)
	if err == store.ErrNotFound {
		return vm, fmt.Errorf("vm %q: %w", name, api.ErrNotFound)
	}
	return vm, err
}

func fillProgress(m *api.Migration, p *pb.MigrationProgress) {
	if p == nil {
		return
	}
	m.TransferredBytes, m.RemainingBytes, m.BytesPerSecond = p.GetTransferredBytes(), p.GetRemainingBytes(), p.GetBytesPerSecond()
	m.ElapsedNanos, m.DowntimeNanos = p.GetElapsedNanos(), p.GetDowntimeNanos()
}
