package conformance

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// maxIfName is the longest Linux interface name (IFNAMSIZ less the NUL):
// a longer tap name cannot be created, nor opened by the hypervisor.
const maxIfName = 15

// netRecord is what a network run learnt from SetupNode and every port it
// may have created, so that cleanup detaches them whatever happened in
// between.
type netRecord struct {
	// nodes are the last SetupNode answers, by node.
	nodes map[string]*pb.SetupNodeResponse
	ports []port
}

// port is a VM's attachment to one node.
type port struct{ vm, node string }

func (r *netRecord) add(vm, node string) {
	if p := (port{vm, node}); !slices.Contains(r.ports, p) {
		r.ports = append(r.ports, p)
	}
}

func (r *netRecord) forget(vm, node string) {
	r.ports = slices.DeleteFunc(r.ports, func(p port) bool { return p == port{vm, node} })
}

// vmName names a VM of the run after label (VM names share the hypervisor
// suite's run prefix, so that two runs against one plugin never meet).
func (s *session) vmName(label string) string { return s.vms.prefix + "-" + label }

func (s *session) setupNode(ctx context.Context, node string) (*pb.SetupNodeResponse, error) {
	resp, err := s.c.Network.SetupNode(ctx, &pb.SetupNodeRequest{Node: node, Peers: peers(s.opts.Nodes, node)})
	if err != nil {
		return nil, fmt.Errorf("SetupNode %s: %w", node, err)
	}
	return resp, nil
}

// peers are the nodes of the run other than node, by name: the suite knows
// no underlay addresses, so the plugin's configuration must place them.
func peers(nodes []string, node string) []string {
	return slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return n == node })
}

// setupNodes sets every node of the run up and records the answers in a
// new map, so that a spec may keep the previous one to compare.
func (s *session) setupNodes(ctx context.Context) error {
	nodes := map[string]*pb.SetupNodeResponse{}
	for _, node := range s.opts.Nodes {
		resp, err := s.setupNode(ctx, node)
		if err != nil {
			return err
		}
		nodes[node] = resp
	}
	s.net.nodes = nodes
	return nil
}

// attachVM attaches vm to node and checks the attachment.
func (s *session) attachVM(ctx context.Context, vm, node string) (*pb.Attachment, error) {
	// Recorded first: an AttachVM that fails half-way may still have
	// created the port.
	s.net.add(vm, node)
	resp, err := s.c.Network.AttachVM(ctx, &pb.AttachVMRequest{Vm: vm, Node: node})
	if err != nil {
		return nil, fmt.Errorf("AttachVM %s on %s: %w", vm, node, err)
	}
	if err := s.checkAttachment(resp.GetAttachment(), vm, node); err != nil {
		return nil, fmt.Errorf("AttachVM: %w", err)
	}
	return resp.GetAttachment(), nil
}

func (s *session) detachVM(ctx context.Context, vm, node string) error {
	if _, err := s.c.Network.DetachVM(ctx, &pb.DetachVMRequest{Vm: vm, Node: node}); err != nil {
		return fmt.Errorf("DetachVM %s on %s: %w", vm, node, err)
	}
	s.net.forget(vm, node)
	return nil
}

// prepareMigration gives a's VM a port on target and checks it keeps the
// VM's MAC and address, twice (PrepareMigration must be idempotent).
func (s *session) prepareMigration(ctx context.Context, a *pb.Attachment, target string) (*pb.Attachment, error) {
	s.net.add(a.GetVm(), target)
	var answers []*pb.Attachment
	for range 2 {
		resp, err := s.c.Network.PrepareMigration(ctx, &pb.PrepareMigrationRequest{Vm: a.GetVm(), TargetNode: target})
		if err != nil {
			return nil, fmt.Errorf("PrepareMigration %s to %s: %w", a.GetVm(), target, err)
		}
		p := resp.GetAttachment()
		if err := s.checkMoved(p, a, target); err != nil {
			return nil, fmt.Errorf("PrepareMigration: %w", err)
		}
		answers = append(answers, p)
	}
	if !proto.Equal(answers[0], answers[1]) {
		return nil, fmt.Errorf("PrepareMigration %s to %s answered %v, then %v: PrepareMigration must be idempotent", a.GetVm(), target, answers[0], answers[1])
	}
	return answers[0], nil
}

// completeMigration ends the migration of a's VM to target and checks the
// VM is left on target when it succeeded, on a's node when not, with its
// MAC and address.
func (s *session) completeMigration(ctx context.Context, a *pb.Attachment, target string, succeeded bool) (*pb.Attachment, error) {
	source := a.GetNode()
	resp, err := s.c.Network.CompleteMigration(ctx, &pb.CompleteMigrationRequest{
		Vm: a.GetVm(), SourceNode: source, TargetNode: target, Succeeded: succeeded,
	})
	if err != nil {
		return nil, fmt.Errorf("CompleteMigration %s from %s to %s (succeeded=%t): %w", a.GetVm(), source, target, succeeded, err)
	}
	winner, loser := target, source
	if !succeeded {
		winner, loser = source, target
	}
	s.net.forget(a.GetVm(), loser)
	if err := s.checkMoved(resp.GetAttachment(), a, winner); err != nil {
		return nil, fmt.Errorf("CompleteMigration (succeeded=%t): %w", succeeded, err)
	}
	return resp.GetAttachment(), nil
}

// checkMoved checks that p is a well-formed attachment of a's VM on node,
// with a's MAC and address.
func (s *session) checkMoved(p, a *pb.Attachment, node string) error {
	if err := s.checkAttachment(p, a.GetVm(), node); err != nil {
		return err
	}
	switch {
	case p.GetMac() != a.GetMac():
		return fmt.Errorf("%s has MAC %s on %s, %s on %s: a VM keeps its MAC across migration", a.GetVm(), p.GetMac(), node, a.GetMac(), a.GetNode())
	case p.GetIpCidr() != a.GetIpCidr():
		return fmt.Errorf("%s has address %s on %s, %s on %s: a VM keeps its address across migration", a.GetVm(), p.GetIpCidr(), node, a.GetIpCidr(), a.GetNode())
	}
	return nil
}

func (s *session) announce(ctx context.Context, a *pb.Attachment) error {
	if _, err := s.c.Network.Announce(ctx, &pb.AnnounceRequest{Vm: a.GetVm(), Node: a.GetNode()}); err != nil {
		return fmt.Errorf("Announce %s on %s: %w", a.GetVm(), a.GetNode(), err)
	}
	return nil
}

func (s *session) listAttachments(ctx context.Context) ([]*pb.Attachment, error) {
	resp, err := s.c.Network.ListAttachments(ctx, &pb.ListAttachmentsRequest{})
	if err != nil {
		return nil, fmt.Errorf("ListAttachments: %w", err)
	}
	return resp.GetAttachments(), nil
}

// runAttachments are the attachments of the run's VMs that the plugin
// lists, by VM and node: the plugin may serve others too.
func (s *session) runAttachments(ctx context.Context) ([]*pb.Attachment, error) {
	all, err := s.listAttachments(ctx)
	if err != nil {
		return nil, err
	}
	ours := slices.DeleteFunc(all, func(a *pb.Attachment) bool { return !strings.HasPrefix(a.GetVm(), s.vmName("")) })
	slices.SortFunc(ours, byPort)
	return ours, nil
}

func byPort(a, b *pb.Attachment) int {
	return cmp.Or(strings.Compare(a.GetVm(), b.GetVm()), strings.Compare(a.GetNode(), b.GetNode()))
}

// listsExactly checks that ListAttachments lists want of the run's VMs and
// nothing else, as they were answered.
func (s *session) listsExactly(ctx context.Context, want ...*pb.Attachment) error {
	got, err := s.runAttachments(ctx)
	if err != nil {
		return err
	}
	want = slices.SortedFunc(slices.Values(want), byPort)
	if !slices.EqualFunc(got, want, func(a, b *pb.Attachment) bool { return byPort(a, b) == 0 }) {
		return fmt.Errorf("ListAttachments lists %s, want %s", ports(got), ports(want))
	}
	for i, a := range got {
		if !proto.Equal(a, want[i]) {
			return fmt.Errorf("ListAttachments has %v, the plugin answered %v", a, want[i])
		}
	}
	return nil
}

// ports formats attachments as "vm@node, ...".
func ports(atts []*pb.Attachment) string {
	if len(atts) == 0 {
		return "none"
	}
	out := make([]string, len(atts))
	for i, a := range atts {
		out[i] = a.GetVm() + "@" + a.GetNode()
	}
	return strings.Join(out, ", ")
}

// detachAll detaches every port of the run the plugin lists or the run may
// have created, and checks that the plugin lists none of them after. A
// port that fails to detach stays recorded, for the next spec's cleanup to
// try again.
func (s *session) detachAll(ctx context.Context) error {
	listed, err := s.runAttachments(ctx)
	errs := []error{err}
	for _, a := range listed {
		s.net.add(a.GetVm(), a.GetNode())
	}
	for _, p := range slices.Clone(s.net.ports) {
		errs = append(errs, s.detachVM(ctx, p.vm, p.node))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	left, err := s.runAttachments(ctx)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("ListAttachments still lists %s after DetachVM", ports(left))
	}
	return nil
}

// checkAttachment checks that a attaches vm to node in the namespace
// SetupNode named, with a tap a hypervisor can open, a unicast MAC, and an
// address of its subnet that is not the gateway's.
func (s *session) checkAttachment(a *pb.Attachment, vm, node string) error {
	switch netns := s.net.nodes[node].GetNetns(); {
	case a == nil:
		return fmt.Errorf("no attachment for %s", vm)
	case a.GetVm() != vm:
		return fmt.Errorf("the attachment is for VM %q, want %q", a.GetVm(), vm)
	case a.GetNode() != node:
		return fmt.Errorf("%s is attached to node %q, want %q", vm, a.GetNode(), node)
	case a.GetNetns() != netns:
		return fmt.Errorf("%s on %s: netns %q, SetupNode %s answered %q", vm, node, a.GetNetns(), node, netns)
	}
	if err := checkTap(a.GetTap()); err != nil {
		return fmt.Errorf("%s: tap %q: %w", vm, a.GetTap(), err)
	}
	if err := checkMAC(a.GetMac()); err != nil {
		return fmt.Errorf("%s: mac %q: %w", vm, a.GetMac(), err)
	}
	ip, err := checkAddress(a.GetIpCidr())
	if err != nil {
		return fmt.Errorf("%s: ip_cidr %q: %w", vm, a.GetIpCidr(), err)
	}
	if a.GetGateway() == "" {
		return nil
	}
	switch gw, err := netip.ParseAddr(a.GetGateway()); {
	case err != nil:
		return fmt.Errorf("%s: gateway %q: not an address: %w", vm, a.GetGateway(), err)
	case !ip.Contains(gw):
		return fmt.Errorf("%s: gateway %s is outside the VM's subnet %s", vm, gw, ip.Masked())
	case gw == ip.Addr():
		return fmt.Errorf("%s: gateway %s is the VM's own address", vm, gw)
	}
	return nil
}

func checkTap(name string) error {
	switch {
	case name == "", name == ".", name == "..":
		return errors.New("not an interface name")
	case len(name) > maxIfName:
		return fmt.Errorf("longer than the %d bytes an interface name may have", maxIfName)
	case strings.ContainsFunc(name, func(r rune) bool { return r == '/' || r == ':' || r <= ' ' }):
		return errors.New("a slash, colon, space or control character in an interface name")
	}
	return nil
}

func checkMAC(s string) error {
	hw, err := net.ParseMAC(s)
	switch {
	case err != nil:
		return err
	case len(hw) != 6:
		return fmt.Errorf("%d bytes, want an Ethernet (6-byte) MAC", len(hw))
	case hw[0]&1 == 1:
		return errors.New("a multicast MAC: a NIC's must be unicast")
	case slices.Equal(hw, make(net.HardwareAddr, 6)):
		return errors.New("all zero")
	}
	return nil
}

// checkAddress parses a VM's address and checks it is neither its subnet's
// network address nor its IPv4 broadcast address.
func checkAddress(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	// /31 and /32 (and IPv6 /127, /128) have no network or broadcast address.
	if p.Addr().BitLen()-p.Bits() < 2 {
		return p, nil
	}
	switch subnet := p.Masked(); {
	case p.Addr() == subnet.Addr():
		return netip.Prefix{}, fmt.Errorf("the network address of %s", subnet)
	case p.Addr().Is4() && p.Addr() == lastAddr(subnet):
		return netip.Prefix{}, fmt.Errorf("the broadcast address of %s", subnet)
	}
	return p, nil
}

// lastAddr is the highest address of subnet.
func lastAddr(subnet netip.Prefix) netip.Addr {
	b := subnet.Addr().AsSlice()
	for i := subnet.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	last, _ := netip.AddrFromSlice(b)
	return last
}

// distinct checks that atts, checked attachments of different VMs, have
// different MACs and addresses, different taps on each node, one subnet,
// and no address that is a gateway.
func distinct(atts []*pb.Attachment) error {
	if len(atts) == 0 {
		return nil
	}
	subnet := ipOf(atts[0]).Masked()
	macs := map[string]string{}
	addrs := map[netip.Addr]string{}
	taps := map[[2]string]string{} // node and tap -> VM
	for _, a := range atts {
		vm, ip := a.GetVm(), ipOf(a)
		hw, _ := net.ParseMAC(a.GetMac())
		if other, ok := macs[hw.String()]; ok {
			return fmt.Errorf("%s and %s have the same MAC %s", other, vm, hw)
		}
		macs[hw.String()] = vm
		if other, ok := addrs[ip.Addr()]; ok {
			return fmt.Errorf("%s and %s have the same address %s: an address was handed out twice", other, vm, ip.Addr())
		}
		addrs[ip.Addr()] = vm
		tap := [2]string{a.GetNode(), a.GetTap()}
		if other, ok := taps[tap]; ok {
			return fmt.Errorf("%s and %s have the same tap %s on %s", other, vm, a.GetTap(), a.GetNode())
		}
		taps[tap] = vm
		if ip.Masked() != subnet {
			return fmt.Errorf("%s has %s, %s has %s: the VMs' addresses must share one subnet", atts[0].GetVm(), atts[0].GetIpCidr(), vm, a.GetIpCidr())
		}
	}
	for _, a := range atts {
		if gw, err := netip.ParseAddr(a.GetGateway()); err == nil && addrs[gw] != "" {
			return fmt.Errorf("%s's gateway %s is %s's address", a.GetVm(), gw, addrs[gw])
		}
	}
	return nil
}

// ipOf is the address of an attachment checkAttachment passed.
func ipOf(a *pb.Attachment) netip.Prefix {
	p, _ := netip.ParsePrefix(a.GetIpCidr())
	return p
}
