package daemon

import (
	"context"
	"fmt"

	"github.com/vertigo-autoscaler/vertigo/host/model"
	"github.com/vertigo-autoscaler/vertigo/host/supervisor"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// networkClient is the network plugin as the daemon uses it: a port per VM
// on its node, moved along with the VM when it migrates.
type networkClient struct{ caller }

// setupNodes makes every node's bridge and overlay exist through c. It is
// idempotent, and runs again whenever the plugin restarts.
func setupNodes(ctx context.Context, c caller, nodes []string) error {
	for _, node := range nodes {
		peers := make([]string, 0, len(nodes)-1)
		for _, p := range nodes {
			if p != node {
				peers = append(peers, p)
			}
		}
		_, err := call(ctx, c, "SetupNode", func(ctx context.Context, cl *sdk.Client) (*pb.SetupNodeResponse, error) {
			return cl.Network.SetupNode(ctx, &pb.SetupNodeRequest{Node: node, Peers: peers})
		})
		if err != nil {
			return fmt.Errorf("setting up node %s's network: %w", node, err)
		}
	}
	return nil
}

// attach gives a VM its port on a node; the same VM gets the same MAC and
// address every time.
func (n networkClient) attach(ctx context.Context, vm, node string) (*pb.Attachment, error) {
	resp, err := call(ctx, n.caller, "AttachVM", func(ctx context.Context, c *sdk.Client) (*pb.AttachVMResponse, error) {
		return c.Network.AttachVM(ctx, &pb.AttachVMRequest{Vm: vm, Node: node})
	})
	if err != nil {
		return nil, fmt.Errorf("attaching vm %s to node %s's network: %w", vm, node, err)
	}
	return resp.GetAttachment(), nil
}

// detach removes a VM's port and frees its address: the VM is gone.
func (n networkClient) detach(ctx context.Context, vm, node string) error {
	_, err := call(ctx, n.caller, "DetachVM", func(ctx context.Context, c *sdk.Client) (*pb.DetachVMResponse, error) {
		return c.Network.DetachVM(ctx, &pb.DetachVMRequest{Vm: vm, Node: node})
	})
	return err
}

func (n networkClient) prepareMigration(ctx context.Context, vm, to string) (*pb.Attachment, error) {
	resp, err := call(ctx, n.caller, "PrepareMigration", func(ctx context.Context, c *sdk.Client) (*pb.PrepareMigrationResponse, error) {
		return c.Network.PrepareMigration(ctx, &pb.PrepareMigrationRequest{Vm: vm, TargetNode: to})
	})
	if err != nil {
		return nil, fmt.Errorf("preparing vm %s's port on %s: %w", vm, to, err)
	}
	return resp.GetAttachment(), nil
}

// completeMigration keeps the port on the node the VM now runs on and
// removes the other; after a success it also announces the VM there, so
// traffic converges without waiting for MAC learning.
func (n networkClient) completeMigration(ctx context.Context, vm, from, to string, succeeded bool) error {
	_, err := call(ctx, n.caller, "CompleteMigration", func(ctx context.Context, c *sdk.Client) (*pb.CompleteMigrationResponse, error) {
		return c.Network.CompleteMigration(ctx, &pb.CompleteMigrationRequest{Vm: vm, SourceNode: from, TargetNode: to, Succeeded: succeeded})
	})
	if err != nil || !succeeded {
		return err
	}
	_, err = call(ctx, n.caller, "Announce", func(ctx context.Context, c *sdk.Client) (*pb.AnnounceResponse, error) {
		return c.Network.Announce(ctx, &pb.AnnounceRequest{Vm: vm, Node: to})
	})
	return err
}

// withPort fills a VM spec's network fields from its attachment.
func withPort(spec *pb.VMSpec, a *pb.Attachment) {
	spec.Tap, spec.Mac, spec.Netns = a.GetTap(), a.GetMac(), a.GetNetns()
	spec.IpCidr, spec.Gateway = a.GetIpCidr(), a.GetGateway()
}

// startNetwork sets up every node's network before any VM is started, and
// again after every restart of the plugin.
func (h *Host) startNetwork(ctx context.Context, np *supervisor.Plugin) error {
	h.net = &networkClient{supervised(np, h.cfg.Loop.CallTimeout, h.metrics.ObservePluginCall)}
	nodes := make([]string, len(h.cfg.Nodes))
	for i, n := range h.cfg.Nodes {
		nodes[i] = n.Name
	}
	np.OnStart(func(ctx context.Context, c *sdk.Client) error {
		return setupNodes(ctx, direct(np.Name(), c, h.cfg.Loop.CallTimeout), nodes)
	})
	return setupNodes(ctx, h.net.caller, nodes)
}

// reconcilePorts leaves each VM exactly one port, on the node it runs on,
// removes the ports of VMs the fleet no longer has (a host that died
// mid-migration left a port on both nodes), and records each VM's address.
func (h *Host) reconcilePorts(ctx context.Context, vms []model.VM) error {
	resp, err := call(ctx, h.net.caller, "ListAttachments", func(ctx context.Context, c *sdk.Client) (*pb.ListAttachmentsResponse, error) {
		return c.Network.ListAttachments(ctx, &pb.ListAttachmentsRequest{})
	})
	if err != nil {
		return fmt.Errorf("listing the network's ports: %w", err)
	}
	byName := map[string]model.VM{}
	for _, vm := range vms {
		byName[vm.Name] = vm
	}
	for _, a := range resp.GetAttachments() {
		vm, known := byName[a.GetVm()]
		node := vm.Node
		switch {
		case known && node == a.GetNode() && vm.Address != a.GetIpCidr():
			vm.Address = a.GetIpCidr()
			_, err = h.store.PutVM(ctx, vm)
		case !known:
			h.log.Warn("removing the port of a VM the fleet does not have", "vm", a.GetVm(), "node", a.GetNode())
			err = h.net.detach(ctx, a.GetVm(), a.GetNode())
		case node != a.GetNode():
			h.log.Warn("removing a port left on a VM's former node", "vm", a.GetVm(), "port_node", a.GetNode(), "vm_node", node)
			err = h.net.completeMigration(ctx, a.GetVm(), a.GetNode(), node, true)
		}
		if err != nil {
			return fmt.Errorf("reconciling vm %s's port on %s: %w", a.GetVm(), a.GetNode(), err)
		}
	}
	return nil
}

// stopVM stops a VM for good: its port and address go with it.
func (h *Host) stopVM(ctx context.Context, vm string) error {
	node := ""
	if stored, err := h.store.GetVM(ctx, vm); err == nil {
		node = stored.Node
	}
	if err := h.hv.StopVM(ctx, vm, stopGrace); err != nil {
		return err
	}
	if h.net == nil {
		return nil
	}
	return h.net.detach(ctx, vm, node)
}
