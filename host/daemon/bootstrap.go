package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/vertigo-autoscaler/vertigo/host/config"
	"github.com/vertigo-autoscaler/vertigo/host/control"
	"github.com/vertigo-autoscaler/vertigo/host/model"
	"github.com/vertigo-autoscaler/vertigo/host/store"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// Reconcile brings the store and placement to the configuration: placement
// first learns the fleet as stored (the store is the truth across restarts),
// then nodes are added or resized and VMs added, re-bounded or removed as
// the file says. A change placement refuses (a node shrunk below what its
// VMs use, a VM pinned where it does not fit) is an error: the host does not
// start on a fleet it cannot account for.
func Reconcile(ctx context.Context, cfg *config.Config, s store.Store, p control.Placement, stop stopFunc, log hclog.Logger) error {
	if err := control.ReplayPlacement(ctx, p, s); err != nil {
		return err
	}
	if err := reconcileNodes(ctx, cfg, s, p); err != nil {
		return err
	}
	return reconcileVMs(ctx, cfg, s, p, stop, log)
}

// stopFunc stops a VM that left the configuration; nil when no hypervisor
// runs VMs.
type stopFunc func(ctx context.Context, vm string) error

func reconcileNodes(ctx context.Context, cfg *config.Config, s store.Store, p control.Placement) error {
	stored, err := s.ListNodes(ctx)
	if err != nil {
		return err
	}
	byName := map[string]model.Node{}
	for _, n := range stored {
		byName[n.Name] = n
	}
	for _, n := range cfg.Nodes {
		old, ok := byName[n.Name]
		delete(byName, n.Name)
		if ok && old.Capacity == n.Capacity && old.Watermark == n.Watermark {
			continue
		}
		if err := apply(ctx, p, &pb.PlacementEvent{Event: &pb.PlacementEvent_NodeUpsert{NodeUpsert: n.Proto()}}); err != nil {
			return fmt.Errorf("node %q: %w", n.Name, err)
		}
		n.Version = old.Version
		if _, err := s.PutNode(ctx, n); err != nil {
			return fmt.Errorf("storing node %q: %w", n.Name, err)
		}
	}
	for _, gone := range byName {
		if err := apply(ctx, p, &pb.PlacementEvent{Event: &pb.PlacementEvent_NodeRemove{NodeRemove: gone.Name}}); err != nil {
			return fmt.Errorf("node %q was removed from the config: %w", gone.Name, err)
		}
		if err := s.DeleteNode(ctx, gone.Name, gone.Version); err != nil {
			return fmt.Errorf("deleting node %q: %w", gone.Name, err)
		}
	}
	return nil
}

func reconcileVMs(ctx context.Context, cfg *config.Config, s store.Store, p control.Placement, stop stopFunc, log hclog.Logger) error {
	stored, err := s.ListVMs(ctx)
	if err != nil {
		return err
	}
	byName := map[string]model.VM{}
	for _, vm := range stored {
		byName[vm.Name] = vm
	}
	for _, spec := range cfg.VMs {
		vm, ok := byName[spec.Name]
		delete(byName, spec.Name)
		if ok {
			if vm.Bounds != spec.Bounds || vm.Image != spec.Image {
				// A VM now outside its new bounds is brought back by the
				// next decision (the host clamps every goal); a new image
				// is what the VM boots next time.
				vm.Bounds, vm.Image = spec.Bounds, spec.Image
				if _, err := s.PutVM(ctx, vm); err != nil {
					return fmt.Errorf("vm %q: %w", spec.Name, err)
				}
			}
			continue
		}
		vm = model.VM{Name: spec.Name, Image: spec.Image, Bounds: spec.Bounds, Size: spec.Initial, Reserved: spec.Initial, Phase: model.PhaseDeclared}
		if err := place(ctx, p, &vm, spec.Node); err != nil {
			return fmt.Errorf("vm %q: %w", spec.Name, err)
		}
		if _, err := s.PutVM(ctx, vm); err != nil {
			return fmt.Errorf("storing vm %q: %w", spec.Name, err)
		}
	}
	for _, gone := range byName {
		log.Info("vm removed from the config; stopping and releasing it", "vm", gone.Name)
		if stop != nil {
			if err := stop(ctx, gone.Name); err != nil {
				return fmt.Errorf("vm %q was removed from the config, but stopping it failed: %w", gone.Name, err)
			}
		}
		if err := apply(ctx, p, &pb.PlacementEvent{Event: &pb.PlacementEvent_VmRemove{VmRemove: gone.Name}}); err != nil {
			return fmt.Errorf("vm %q: %w", gone.Name, err)
		}
		if err := s.DeleteVM(ctx, gone.Name, gone.Version); err != nil {
			return fmt.Errorf("deleting vm %q: %w", gone.Name, err)
		}
	}
	return nil
}

// place puts a new VM on its pinned node, or where placement chooses; a VM
// that fits nowhere waits as pending.
func place(ctx context.Context, p control.Placement, vm *model.VM, pinned string) error {
	if pinned != "" {
		vm.Node = pinned
		return apply(ctx, p, &pb.PlacementEvent{Event: &pb.PlacementEvent_VmUpsert{VmUpsert: vm.Placement()}})
	}
	resp, err := p.Place(ctx, &pb.PlaceRequest{Vm: vm.Name, Size: vm.Reserved.Proto(), Unit: vm.Bounds.Unit.Proto()})
	if err != nil {
		return fmt.Errorf("placement: %w", err)
	}
	if resp.GetNode() == "" {
		vm.Phase, vm.Message = model.PhasePending, "fits on no node: "+resp.GetReason()
		return nil
	}
	vm.Node = resp.GetNode()
	return nil
}

func apply(ctx context.Context, p control.Placement, e *pb.PlacementEvent) error {
	errs, err := p.Apply(ctx, []*pb.PlacementEvent{e})
	if err != nil {
		return err
	}
	if len(errs) > 0 {
		return errors.New(errs[0].GetMessage())
	}
	return nil
}
