package conformance

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
	"github.com/vertigo-autoscaler/vertigo/sdk/schema"
)

// The fake network plugin keeps its bridges and taps in memory, with no
// kernel: the smallest honest implementation of the protocol, to show the
// network suite passes against a correct plugin, and a base for the broken
// variants that must fail it.

// fakeSubnet is small, so that the suite fills it quickly: 61 addresses
// for VMs once the network, gateway and broadcast addresses are out.
const fakeSubnet = "10.99.0.0/26"

// fakeNet is what outlives a fake network plugin process, as the kernel's
// links and the real plugin's state file do: the nodes set up and every
// VM's MAC, address and ports.
type fakeNet struct {
	mu    sync.Mutex
	nodes map[string]bool
	nics  map[string]*fakeNIC // by VM
	macs  int                 // the last MAC suffix handed out
}

func newFakeNet() *fakeNet { return &fakeNet{nodes: map[string]bool{}, nics: map[string]*fakeNIC{}} }

// fakeNIC is a VM's identity on the network and its taps, by node: two
// while a migration is prepared.
type fakeNIC struct {
	mac   net.HardwareAddr
	addr  netip.Addr
	ports map[string]string
}

// ports are every VM's ports, as vm@node, sorted.
func (n *fakeNet) ports() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for vm, nic := range n.nics {
		for node := range nic.ports {
			out = append(out, vm+"@"+node)
		}
	}
	slices.Sort(out)
	return out
}

// nic is vm's NIC; the caller holds n.mu.
func (n *fakeNet) nic(vm string) (*fakeNIC, error) {
	nic, ok := n.nics[vm]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no VM %q", vm)
	}
	return nic, nil
}

// setUp refuses a node never set up; the caller holds n.mu.
func (n *fakeNet) setUp(node string) error {
	if !n.nodes[node] {
		return status.Errorf(codes.FailedPrecondition, "node %q is not set up", node)
	}
	return nil
}

// fakeNetwork is one plugin process over a fakeNet.
type fakeNetwork struct {
	pb.UnimplementedNetworkServer
	n    *fakeNet
	caps []string
	// allocate picks a new VM's address from subnet, false when it is
	// full; the caller holds n.mu.
	allocate func(n *fakeNet, subnet netip.Prefix) (netip.Addr, bool)

	mu     sync.Mutex
	subnet netip.Prefix // invalid until configured
}

var allNetworkCaps = []string{capAnnounce}

type fakeNetConfig struct {
	Subnet string `json:"subnet"`
}

func (f *fakeNetwork) Info() sdk.Info {
	return sdk.Info{Name: "fake-network", Kind: pb.Kind_KIND_NETWORK, Version: "0.1.0", APIVersions: sdk.APIVersions}
}

func (f *fakeNetwork) ConfigSchema() *pb.ConfigSchema {
	return schema.Of(schema.String("subnet", fakeSubnet, "the VMs' subnet"))
}

func (f *fakeNetwork) SetConfig(_ context.Context, configJSON []byte, _ uint32) error {
	var cfg fakeNetConfig
	if err := sdk.DecodeConfig(configJSON, &cfg); err != nil {
		return err
	}
	subnet, err := netip.ParsePrefix(cfg.Subnet)
	if err != nil || !subnet.Addr().Is4() || subnet != subnet.Masked() {
		return sdk.FieldErrors{{Field: "subnet", Message: fmt.Sprintf("%q is not an IPv4 subnet", cfg.Subnet)}}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subnet = subnet
	return nil
}

func (f *fakeNetwork) Capabilities(context.Context) []string { return f.caps }

func (f *fakeNetwork) Health(context.Context) error { return nil }

// configured is the subnet, or an error before SetConfig.
func (f *fakeNetwork) configured() (netip.Prefix, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.subnet.IsValid() {
		return netip.Prefix{}, status.Error(codes.FailedPrecondition, "not configured")
	}
	return f.subnet, nil
}

// gateway is the subnet's first address, never a VM's.
func gateway(subnet netip.Prefix) netip.Addr { return subnet.Addr().Next() }

// lowestFree is the correct allocator: the lowest address no VM holds.
func lowestFree(n *fakeNet, subnet netip.Prefix) (netip.Addr, bool) {
	held := map[netip.Addr]bool{}
	for _, nic := range n.nics {
		held[nic.addr] = true
	}
	for a := gateway(subnet).Next(); subnet.Contains(a) && a != lastAddr(subnet); a = a.Next() {
		if !held[a] {
			return a, true
		}
	}
	return netip.Addr{}, false
}

func (f *fakeNetwork) attachment(vm, node string, nic *fakeNIC, subnet netip.Prefix) *pb.Attachment {
	return &pb.Attachment{
		Vm: vm, Node: node, Tap: nic.ports[node], Mac: nic.mac.String(),
		IpCidr: netip.PrefixFrom(nic.addr, subnet.Bits()).String(), Netns: "fake-" + node, Gateway: gateway(subnet).String(),
	}
}

func (f *fakeNetwork) SetupNode(_ context.Context, req *pb.SetupNodeRequest) (*pb.SetupNodeResponse, error) {
	if _, err := f.configured(); err != nil {
		return nil, err
	}
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	f.n.nodes[req.GetNode()] = true
	return &pb.SetupNodeResponse{Bridge: "br0", Netns: "fake-" + req.GetNode()}, nil
}

func (f *fakeNetwork) AttachVM(_ context.Context, req *pb.AttachVMRequest) (*pb.AttachVMResponse, error) {
	subnet, err := f.configured()
	if err != nil {
		return nil, err
	}
	if req.GetVm() == "" {
		return nil, status.Error(codes.InvalidArgument, "vm: empty")
	}
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if err := f.n.setUp(req.GetNode()); err != nil {
		return nil, err
	}
	nic, ok := f.n.nics[req.GetVm()]
	if !ok {
		addr, ok := f.allocate(f.n, subnet)
		if !ok {
			return nil, status.Errorf(codes.ResourceExhausted, "no address left in %s", subnet)
		}
		f.n.macs++
		nic = &fakeNIC{mac: net.HardwareAddr{0x02, 0, 0, 0, byte(f.n.macs >> 8), byte(f.n.macs)}, addr: addr, ports: map[string]string{}}
		f.n.nics[req.GetVm()] = nic
	}
	f.addPort(nic, req.GetNode())
	return &pb.AttachVMResponse{Attachment: f.attachment(req.GetVm(), req.GetNode(), nic, subnet)}, nil
}

// addPort gives nic a tap on node, named after its MAC as the real plugin
// names it after the VM; the caller holds n.mu.
func (f *fakeNetwork) addPort(nic *fakeNIC, node string) {
	if _, ok := nic.ports[node]; !ok {
		nic.ports[node] = fmt.Sprintf("vt%02x%02x", nic.mac[4], nic.mac[5])
	}
}

func (f *fakeNetwork) DetachVM(_ context.Context, req *pb.DetachVMRequest) (*pb.DetachVMResponse, error) {
	if _, err := f.configured(); err != nil {
		return nil, err
	}
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if nic, ok := f.n.nics[req.GetVm()]; ok {
		delete(nic.ports, req.GetNode())
		if len(nic.ports) == 0 {
			delete(f.n.nics, req.GetVm())
		}
	}
	return &pb.DetachVMResponse{}, nil
}

func (f *fakeNetwork) PrepareMigration(_ context.Context, req *pb.PrepareMigrationRequest) (*pb.PrepareMigrationResponse, error) {
	subnet, err := f.configured()
	if err != nil {
		return nil, err
	}
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if err := f.n.setUp(req.GetTargetNode()); err != nil {
		return nil, err
	}
	nic, err := f.n.nic(req.GetVm())
	if err != nil {
		return nil, err
	}
	f.addPort(nic, req.GetTargetNode())
	return &pb.PrepareMigrationResponse{Attachment: f.attachment(req.GetVm(), req.GetTargetNode(), nic, subnet)}, nil
}

func (f *fakeNetwork) CompleteMigration(_ context.Context, req *pb.CompleteMigrationRequest) (*pb.CompleteMigrationResponse, error) {
	subnet, err := f.configured()
	if err != nil {
		return nil, err
	}
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	nic, err := f.n.nic(req.GetVm())
	if err != nil {
		return nil, err
	}
	winner, loser := req.GetTargetNode(), req.GetSourceNode()
	if !req.GetSucceeded() {
		winner, loser = loser, winner
	}
	if _, ok := nic.ports[winner]; !ok {
		return nil, status.Errorf(codes.FailedPrecondition, "%s has no port on %s", req.GetVm(), winner)
	}
	delete(nic.ports, loser)
	return &pb.CompleteMigrationResponse{Attachment: f.attachment(req.GetVm(), winner, nic, subnet)}, nil
}

func (f *fakeNetwork) Announce(_ context.Context, req *pb.AnnounceRequest) (*pb.AnnounceResponse, error) {
	if _, err := f.configured(); err != nil {
		return nil, err
	}
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	nic, err := f.n.nic(req.GetVm())
	if err != nil {
		return nil, err
	}
	if _, ok := nic.ports[req.GetNode()]; !ok {
		return nil, status.Errorf(codes.FailedPrecondition, "%s has no port on %s", req.GetVm(), req.GetNode())
	}
	return &pb.AnnounceResponse{}, nil
}

func (f *fakeNetwork) ListAttachments(context.Context, *pb.ListAttachmentsRequest) (*pb.ListAttachmentsResponse, error) {
	subnet, err := f.configured()
	if err != nil {
		return nil, err
	}
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	resp := &pb.ListAttachmentsResponse{}
	for _, vm := range slices.Sorted(maps.Keys(f.n.nics)) {
		nic := f.n.nics[vm]
		for _, node := range slices.Sorted(maps.Keys(nic.ports)) {
			resp.Attachments = append(resp.Attachments, f.attachment(vm, node, nic, subnet))
		}
	}
	return resp, nil
}
