package ipam

import (
	"net/netip"
	"slices"
	"sort"
)

// State is everything the plugin has handed out. It is the plugin's only
// memory: a restarted plugin rebuilds the kernel side from it.
type State struct {
	// Nodes are the nodes SetupNode was called for.
	Nodes map[string]Node `json:"nodes"`
	// ClientUnderlay is the client namespace's underlay address, zero when
	// there is none.
	ClientUnderlay netip.Addr     `json:"client_underlay,omitzero"`
	VMs            map[string]*VM `json:"vms"`
	// LastIP and LastUnderlay are the last addresses handed out, where the
	// next search starts (see Pool.Allocate).
	LastIP       netip.Addr `json:"last_ip,omitzero"`
	LastUnderlay netip.Addr `json:"last_underlay,omitzero"`
}

// Node is a set-up node.
type Node struct {
	// Underlay is the node's VTEP address.
	Underlay netip.Addr `json:"underlay"`
	// Peers are the other VTEPs the node floods to when they are not nodes
	// of this plugin (host mode: the other machines).
	Peers []netip.Addr `json:"peers,omitempty"`
}

// VM is one VM's identity on the network and where its ports are.
type VM struct {
	MAC string     `json:"mac"`
	IP  netip.Addr `json:"ip"`
	Tap string     `json:"tap"`
	// Node holds the VM's port; Target, during a migration, the second one.
	Node   string `json:"node"`
	Target string `json:"target,omitempty"`
}

// Ports are the nodes the VM has a tap on, Node first.
func (v *VM) Ports() []string {
	if v.Target == "" {
		return []string{v.Node}
	}
	return []string{v.Node, v.Target}
}

// New is an empty state.
func New() *State {
	return &State{Nodes: map[string]Node{}, VMs: map[string]*VM{}}
}

// NodeNames are the set-up nodes, sorted.
func (s *State) NodeNames() []string {
	names := make([]string, 0, len(s.Nodes))
	for n := range s.Nodes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// VMNames are the recorded VMs, sorted.
func (s *State) VMNames() []string {
	names := make([]string, 0, len(s.VMs))
	for n := range s.VMs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// AddVM records a new VM on node with a fresh address from pool and a MAC
// and tap name no other VM has.
func (s *State) AddVM(name, node string, pool Pool) (*VM, error) {
	ip, err := pool.Allocate(func(a netip.Addr) bool { return s.owner(func(v *VM) bool { return v.IP == a }) }, s.LastIP)
	if err != nil {
		return nil, err
	}
	mac, err := MAC(name, func(m string) bool { return s.owner(func(v *VM) bool { return v.MAC == m }) })
	if err != nil {
		return nil, err
	}
	tap, err := TapName(name, func(t string) bool { return s.owner(func(v *VM) bool { return v.Tap == t }) })
	if err != nil {
		return nil, err
	}
	vm := &VM{MAC: mac, IP: ip, Tap: tap, Node: node}
	s.VMs[name] = vm
	s.LastIP = ip
	return vm, nil
}

func (s *State) owner(match func(*VM) bool) bool {
	for _, v := range s.VMs {
		if match(v) {
			return true
		}
	}
	return false
}

// AllocateUnderlay hands out a VTEP address from pool that no node and not
// the client holds.
func (s *State) AllocateUnderlay(pool Pool) (netip.Addr, error) {
	held := s.underlays()
	a, err := pool.Allocate(func(a netip.Addr) bool { return slices.Contains(held, a) }, s.LastUnderlay)
	if err != nil {
		return a, err
	}
	s.LastUnderlay = a
	return a, nil
}

// VTEPs are the underlay addresses of every node and of the client, and
// the peers nodes were given, sorted and without duplicates: the flood
// list of the overlay.
func (s *State) VTEPs() []netip.Addr {
	all := s.underlays()
	for _, n := range s.Nodes {
		all = append(all, n.Peers...)
	}
	slices.SortFunc(all, netip.Addr.Compare)
	return slices.Compact(all)
}

func (s *State) underlays() []netip.Addr {
	var held []netip.Addr
	for _, n := range s.Nodes {
		held = append(held, n.Underlay)
	}
	if s.ClientUnderlay.IsValid() {
		held = append(held, s.ClientUnderlay)
	}
	return held
}

// Outside lists the VMs whose address is not a host address of pool,
// sorted: a state that a new subnet setting would orphan.
func (s *State) Outside(pool Pool) []string {
	var out []string
	for _, name := range s.VMNames() {
		if !pool.Contains(s.VMs[name].IP) {
			out = append(out, name)
		}
	}
	return out
}
