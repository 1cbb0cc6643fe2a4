package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vertigo-autoscaler/vertigo/plugins/network-bridge/ipam"
	"github.com/vertigo-autoscaler/vertigo/plugins/network-bridge/netdev"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

const (
	pluginName    = "vertigo-bridge"
	pluginVersion = "0.1.0"
)

// plugin serves the Network kind. One lock serialises every call: each
// changes the state file and the kernel together, and takes milliseconds.
type plugin struct {
	pb.UnimplementedNetworkServer
	log hclog.Logger

	mu    sync.Mutex
	cfg   config
	state *ipam.State // nil until SetConfig
}

func newPlugin(log hclog.Logger) *plugin { return &plugin{log: log} }

func (p *plugin) Info() sdk.Info {
	return sdk.Info{Name: pluginName, Kind: pb.Kind_KIND_NETWORK, Version: pluginVersion, APIVersions: sdk.APIVersions}
}

func (p *plugin) ConfigSchema() *pb.ConfigSchema { return configSchema() }

// SetConfig loads the state file and rebuilds whatever of the recorded
// fabric and ports is missing, so that a restarted plugin (or a rebooted
// machine) finds everything as it was. Existing devices are kept.
func (p *plugin) SetConfig(_ context.Context, configJSON []byte, _ uint32) error {
	cfg, err := decodeConfig(configJSON)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.stateFile), 0o700); err != nil {
		return sdk.FieldErrors{{Field: "state_dir", Message: err.Error()}}
	}
	st, err := ipam.Load(cfg.stateFile)
	if err != nil {
		return sdk.FieldErrors{{Field: "state_dir", Message: err.Error()}}
	}
	if out := st.Outside(cfg.subnet); len(out) > 0 {
		return sdk.FieldErrors{{Field: "subnet", Message: fmt.Sprintf("%s does not hold the addresses of recorded VMs %v", cfg.subnet.Prefix(), out)}}
	}
	for name, vm := range st.VMs {
		if vm.IP == cfg.subnet.First() {
			return sdk.FieldErrors{{Field: "subnet", Message: fmt.Sprintf("its gateway %s is recorded VM %q's address", vm.IP, name)}}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := cfg.ensureFabric(st); err != nil {
		return fmt.Errorf("rebuilding the recorded network: %w", err)
	}
	p.cfg, p.state = cfg, st
	p.log.Info("configured", "mode", cfg.mode, "state", cfg.stateFile, "nodes", len(st.Nodes), "vms", len(st.VMs))
	return nil
}

func (p *plugin) Capabilities(context.Context) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	caps := []string{"network.overlay", "network.announce", "network.stable_address"}
	if p.state != nil && p.cfg.mode == modeNamespaces {
		caps = append(caps, "network.netns")
		if p.cfg.client != "" {
			caps = append(caps, "network.client_namespace")
		}
	}
	return caps
}

// Health reports a configured plugin whose nodes' bridges all exist.
func (p *plugin) Health(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == nil {
		return errNotConfigured
	}
	for _, n := range p.state.NodeNames() {
		if _, ok, err := netdev.LinkInfo(p.cfg.nodeNS(n), bridgeName); err != nil || !ok {
			return fmt.Errorf("node %q: bridge %s is missing (%v)", n, bridgeName, err)
		}
	}
	return nil
}

var errNotConfigured = status.Error(codes.FailedPrecondition, "the plugin has no configuration yet (SetConfig)")

// locked runs fn with the lock held and the plugin configured, and turns
// plain errors into Internal ones (fn returns a status for anything else).
func (p *plugin) locked(fn func() error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == nil {
		return errNotConfigured
	}
	err := fn()
	if _, ok := status.FromError(err); err != nil && !ok {
		return status.Error(codes.Internal, err.Error())
	}
	return err
}

func (p *plugin) save() error { return p.state.Save(p.cfg.stateFile) }

// node checks that node was set up.
func (p *plugin) node(field, node string) error {
	if node == "" {
		return status.Errorf(codes.InvalidArgument, "%s: must not be empty", field)
	}
	if _, ok := p.state.Nodes[node]; !ok {
		return status.Errorf(codes.FailedPrecondition, "%s: node %q is not set up (call SetupNode first)", field, node)
	}
	return nil
}

// vm returns a recorded VM.
func (p *plugin) vm(name string) (*ipam.VM, error) {
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "vm: must not be empty")
	}
	vm, ok := p.state.VMs[name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "vm %q is not attached", name)
	}
	return vm, nil
}

func (p *plugin) attachment(name, node string) *pb.Attachment {
	vm := p.state.VMs[name]
	return &pb.Attachment{
		Vm: name, Node: node, Tap: vm.Tap, Mac: vm.MAC,
		IpCidr:  p.cfg.subnet.CIDR(vm.IP),
		Netns:   p.cfg.nodeNS(node),
		Gateway: p.cfg.subnet.First().String(),
	}
}

// SetupNode records the node (with an underlay address of its own in
// namespaces mode) and makes the whole fabric whole, so a joining node is
// added to every other VTEP's flood list. Calling it again is harmless.
//
// In namespaces mode underlay_address and peers are ignored: the plugin
// knows every node. In host mode underlay_address is required and peers
// are the other machines' underlay addresses.
func (p *plugin) SetupNode(_ context.Context, req *pb.SetupNodeRequest) (*pb.SetupNodeResponse, error) {
	var resp *pb.SetupNodeResponse
	err := p.locked(func() error {
		node := req.GetNode()
		if err := p.cfg.checkNode(node); err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		rec, err := p.nodeRecord(node, req)
		if err != nil {
			return err
		}
		p.state.Nodes[node] = rec
		if p.cfg.mode == modeNamespaces && p.cfg.client != "" && !p.state.ClientUnderlay.IsValid() {
			if p.state.ClientUnderlay, err = p.state.AllocateUnderlay(p.cfg.underlay); err != nil {
				return status.Errorf(codes.ResourceExhausted, "underlay_subnet: %v", err)
			}
		}
		if err := p.save(); err != nil {
			return err
		}
		if err := p.cfg.ensureFabric(p.state); err != nil {
			return err
		}
		resp = &pb.SetupNodeResponse{Bridge: bridgeName, Netns: p.cfg.nodeNS(node)}
		return nil
	})
	return resp, err
}

// nodeRecord is what the state should hold for node after this request.
func (p *plugin) nodeRecord(node string, req *pb.SetupNodeRequest) (ipam.Node, error) {
	rec, known := p.state.Nodes[node]
	if p.cfg.mode == modeNamespaces {
		if known {
			return rec, nil
		}
		a, err := p.state.AllocateUnderlay(p.cfg.underlay)
		if err != nil {
			return rec, status.Errorf(codes.ResourceExhausted, "underlay_subnet: %v", err)
		}
		return ipam.Node{Underlay: a}, nil
	}
	for other := range p.state.Nodes {
		if other != node {
			return rec, status.Errorf(codes.FailedPrecondition, "node: host mode serves one node, and this plugin serves %q", other)
		}
	}
	local, err := netip.ParseAddr(req.GetUnderlayAddress())
	if err != nil || !local.Is4() {
		return rec, status.Errorf(codes.InvalidArgument, "underlay_address: want this machine's IPv4 underlay address, got %q", req.GetUnderlayAddress())
	}
	rec = ipam.Node{Underlay: local}
	for i, peer := range req.GetPeers() {
		a, err := netip.ParseAddr(peer)
		if err != nil || !a.Is4() {
			return rec, status.Errorf(codes.InvalidArgument, "peers[%d]: want a peer's IPv4 underlay address, got %q", i, peer)
		}
		if a != local && !slices.Contains(rec.Peers, a) {
			rec.Peers = append(rec.Peers, a)
		}
	}
	slices.SortFunc(rec.Peers, netip.Addr.Compare)
	return rec, nil
}

// AttachVM gives a new VM its address, MAC and tap on node; for a VM that
// has a port on node already it returns that port (and remakes its tap if
// it went missing).
func (p *plugin) AttachVM(_ context.Context, req *pb.AttachVMRequest) (*pb.AttachVMResponse, error) {
	var resp *pb.AttachVMResponse
	err := p.locked(func() error {
		name, node := req.GetVm(), req.GetNode()
		if name == "" {
			return status.Error(codes.InvalidArgument, "vm: must not be empty")
		}
		if err := p.node("node", node); err != nil {
			return err
		}
		vm, known := p.state.VMs[name]
		switch {
		case known && !slices.Contains(vm.Ports(), node):
			return status.Errorf(codes.FailedPrecondition, "vm %q is attached on node %q: move it with PrepareMigration", name, vm.Node)
		case !known:
			var err error
			if vm, err = p.state.AddVM(name, node, p.cfg.subnet); err != nil {
				if errors.Is(err, ipam.ErrExhausted) {
					return status.Errorf(codes.ResourceExhausted, "subnet: %v", err)
				}
				return err
			}
			// Recorded before the tap exists: the address is the VM's even
			// if the plugin dies now.
			if err := p.save(); err != nil {
				delete(p.state.VMs, name)
				return err
			}
			p.log.Info("vm attached", "vm", name, "node", node, "ip", vm.IP, "mac", vm.MAC, "tap", vm.Tap)
		}
		if err := netdev.EnsureTap(p.cfg.nodeNS(node), vm.Tap, bridgeName); err != nil {
			return err
		}
		resp = &pb.AttachVMResponse{Attachment: p.attachment(name, node)}
		return nil
	})
	return resp, err
}

// DetachVM removes the VM's port on node. Removing its last port forgets
// the VM and frees its address. Detaching an unknown VM succeeds: it may
// have been detached already.
func (p *plugin) DetachVM(_ context.Context, req *pb.DetachVMRequest) (*pb.DetachVMResponse, error) {
	err := p.locked(func() error {
		name, node := req.GetVm(), req.GetNode()
		vm, err := p.vm(name)
		if status.Code(err) == codes.NotFound {
			return nil
		}
		if err != nil {
			return err
		}
		if !slices.Contains(vm.Ports(), node) {
			return status.Errorf(codes.FailedPrecondition, "vm %q has no port on node %q (its ports: %v)", name, node, vm.Ports())
		}
		if err := netdev.DeleteLink(p.cfg.nodeNS(node), vm.Tap); err != nil {
			return err
		}
		switch {
		case vm.Target == "":
			delete(p.state.VMs, name)
			p.log.Info("vm detached, address freed", "vm", name, "ip", vm.IP)
		case node == vm.Target:
			vm.Target = ""
		default:
			vm.Node, vm.Target = vm.Target, ""
		}
		return p.save()
	})
	return &pb.DetachVMResponse{}, err
}

// PrepareMigration gives the VM a second port, on the target node, with
// the same tap name, MAC and address, for the destination QEMU to open.
func (p *plugin) PrepareMigration(_ context.Context, req *pb.PrepareMigrationRequest) (*pb.PrepareMigrationResponse, error) {
	var resp *pb.PrepareMigrationResponse
	err := p.locked(func() error {
		name, target := req.GetVm(), req.GetTargetNode()
		vm, err := p.vm(name)
		if err != nil {
			return err
		}
		if err := p.node("target_node", target); err != nil {
			return err
		}
		switch {
		case target == vm.Node:
			return status.Errorf(codes.InvalidArgument, "target_node: vm %q is on node %q already", name, target)
		case vm.Target != "" && vm.Target != target:
			return status.Errorf(codes.FailedPrecondition, "vm %q is being migrated to node %q already", name, vm.Target)
		case p.cfg.mode == modeHost:
			return status.Error(codes.Unimplemented, "host mode serves one node: the target node's plugin prepares the target port")
		}
		if vm.Target == "" {
			vm.Target = target
			if err := p.save(); err != nil {
				vm.Target = ""
				return err
			}
		}
		if err := netdev.EnsureTap(p.cfg.nodeNS(target), vm.Tap, bridgeName); err != nil {
			return err
		}
		resp = &pb.PrepareMigrationResponse{Attachment: p.attachment(name, target)}
		return nil
	})
	return resp, err
}

// CompleteMigration keeps the port that won and removes the other. Asked
// again after it completed the same way, it returns the winner's port.
func (p *plugin) CompleteMigration(_ context.Context, req *pb.CompleteMigrationRequest) (*pb.CompleteMigrationResponse, error) {
	var resp *pb.CompleteMigrationResponse
	err := p.locked(func() error {
		name, source, target := req.GetVm(), req.GetSourceNode(), req.GetTargetNode()
		vm, err := p.vm(name)
		if err != nil {
			return err
		}
		winner, loser := target, source
		if !req.GetSucceeded() {
			winner, loser = source, target
		}
		switch {
		case vm.Node == source && vm.Target == target:
			if err := netdev.DeleteLink(p.cfg.nodeNS(loser), vm.Tap); err != nil {
				return err
			}
			vm.Node, vm.Target = winner, ""
			if err := p.save(); err != nil {
				return err
			}
			p.log.Info("migration completed", "vm", name, "succeeded", req.GetSucceeded(), "node", winner)
		case vm.Node == winner && vm.Target == "":
			// Completed already.
		default:
			return status.Errorf(codes.FailedPrecondition, "vm %q is not migrating from %q to %q (its ports: %v)", name, source, target, vm.Ports())
		}
		resp = &pb.CompleteMigrationResponse{Attachment: p.attachment(name, winner)}
		return nil
	})
	return resp, err
}

// Announce makes the overlay deliver the VM's frames to node at once. The
// kernel learned where the VM's MAC was: on every other VTEP (nodes and the
// client) a VXLAN entry pointing at the old node, and on the bridges entries
// pointing at the old tap or at the VXLAN port. Announce deletes every such
// learned entry for the VM's MAC, except on its tap on node, so frames for
// it are flooded (head-end replicated to every VTEP) until the VM's next
// frame is learned at its new place. It sends nothing itself: the guest's
// own announcement (QEMU's announce-self after a migration) refreshes
// neighbours' ARP caches. In host mode only this machine's entries are
// reachable; other machines learn from the guest's announcement.
func (p *plugin) Announce(_ context.Context, req *pb.AnnounceRequest) (*pb.AnnounceResponse, error) {
	err := p.locked(func() error {
		name, node := req.GetVm(), req.GetNode()
		vm, err := p.vm(name)
		if err != nil {
			return err
		}
		if !slices.Contains(vm.Ports(), node) {
			return status.Errorf(codes.FailedPrecondition, "vm %q has no port on node %q (its ports: %v)", name, node, vm.Ports())
		}
		mac, err := net.ParseMAC(vm.MAC)
		if err != nil {
			return err
		}
		forgotten := 0
		for _, ns := range p.vtepNamespaces() {
			keep := ""
			if ns == p.cfg.nodeNS(node) {
				keep = vm.Tap
			}
			n, err := netdev.Forget(ns, mac, keep)
			if err != nil {
				return err
			}
			forgotten += n
		}
		p.log.Debug("announced", "vm", name, "node", node, "stale_entries", forgotten)
		return nil
	})
	return &pb.AnnounceResponse{}, err
}

// vtepNamespaces are the namespaces of every VTEP this plugin runs, each
// once (in host mode, just the plugin's own).
func (p *plugin) vtepNamespaces() []string {
	var out []string
	for _, n := range p.state.NodeNames() {
		out = append(out, p.cfg.nodeNS(n))
	}
	if p.cfg.client != "" && p.state.ClientUnderlay.IsValid() {
		out = append(out, p.cfg.client)
	}
	return slices.Compact(out)
}

func (p *plugin) ListAttachments(context.Context, *pb.ListAttachmentsRequest) (*pb.ListAttachmentsResponse, error) {
	resp := &pb.ListAttachmentsResponse{}
	err := p.locked(func() error {
		for _, name := range p.state.VMNames() {
			for _, node := range p.state.VMs[name].Ports() {
				resp.Attachments = append(resp.Attachments, p.attachment(name, node))
			}
		}
		return nil
	})
	return resp, err
}
