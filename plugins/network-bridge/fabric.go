package main

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"slices"

	"github.com/vertigo-autoscaler/vertigo/plugins/network-bridge/ipam"
	"github.com/vertigo-autoscaler/vertigo/plugins/network-bridge/netdev"
)

// The fabric's device names. Inside a namespace of its own every node can
// use the same ones, which keeps `ip netns exec` sessions predictable.
const (
	bridgeName     = "vbr0"     // a node's bridge, holding its taps and its VTEP
	vxlanName      = "vx0"      // a node's VTEP
	underlayName   = "underlay" // suffix of the underlay namespace
	underlayBridge = "ubr0"     // the underlay's switch, in the underlay namespace
	underlayDev    = "ul0"      // a VTEP namespace's leg into the underlay
	vxlanPort      = 4789
	// overlayMTU is what guests may send; the underlay veths carry it plus
	// VXLAN's 50 bytes, so no guest needs a smaller MTU in namespaces mode.
	overlayMTU  = 1500
	underlayMTU = overlayMTU + 50
)

// nodeNS is the namespace of a node's bridge and taps: its own in
// namespaces mode, the plugin's ("") in host mode.
func (c config) nodeNS(node string) string {
	if c.mode == modeHost {
		return ""
	}
	return c.prefix + node
}

func (c config) underlayNS() string { return c.prefix + underlayName }

// underlayPort names a VTEP namespace's port on the underlay bridge. All
// ports share the underlay namespace, so the name comes from a hash of the
// (unique) namespace name, within the 15-character limit.
func underlayPort(ns string) string {
	sum := sha256.Sum256([]byte(ns))
	return "u-" + hex.EncodeToString(sum[:5])
}

// ensureVTEP makes a VTEP namespace whole: in namespaces mode the
// namespace, its leg into the underlay with its underlay address, then in
// either mode the bridge and the VXLAN device enslaved to it.
func (c config) ensureVTEP(ns string, local netip.Addr) error {
	vx := netdev.VXLAN{NS: ns, Name: vxlanName, Bridge: bridgeName, VNI: c.vni, Port: vxlanPort, Local: local}
	if c.mode == modeNamespaces {
		if err := netdev.EnsureNamespace(ns); err != nil {
			return err
		}
		leg := netdev.Veth{NS: ns, Name: underlayDev, PeerNS: c.underlayNS(), PeerName: underlayPort(ns), PeerBridge: underlayBridge, MTU: underlayMTU}
		if err := netdev.EnsureVeth(leg); err != nil {
			return err
		}
		if err := netdev.EnsureAddr(ns, underlayDev, netip.PrefixFrom(local, c.underlay.Prefix().Bits())); err != nil {
			return err
		}
		vx.Parent, vx.MTU = underlayDev, overlayMTU
	}
	if err := netdev.EnsureBridge(ns, bridgeName); err != nil {
		return err
	}
	return netdev.EnsureVXLAN(vx)
}

// ensureFabric makes every recorded VTEP whole, each flooding to all the
// others, and every recorded port exist. It is the whole of re-setup after
// a restart or a reboot, and it changes nothing that is already right.
func (c config) ensureFabric(st *ipam.State) error {
	if len(st.Nodes) == 0 {
		return nil
	}
	type vtep struct {
		ns    string
		local netip.Addr
	}
	var vteps []vtep
	for _, n := range st.NodeNames() {
		vteps = append(vteps, vtep{c.nodeNS(n), st.Nodes[n].Underlay})
	}
	if c.mode == modeNamespaces {
		if err := netdev.EnsureNamespace(c.underlayNS()); err != nil {
			return err
		}
		if err := netdev.EnsureBridge(c.underlayNS(), underlayBridge); err != nil {
			return err
		}
		if c.client != "" && st.ClientUnderlay.IsValid() {
			vteps = append(vteps, vtep{c.client, st.ClientUnderlay})
		}
	}
	all := st.VTEPs()
	for _, v := range vteps {
		if err := c.ensureVTEP(v.ns, v.local); err != nil {
			return err
		}
		others := slices.DeleteFunc(slices.Clone(all), func(a netip.Addr) bool { return a == v.local })
		if err := netdev.SetFlood(v.ns, vxlanName, others); err != nil {
			return err
		}
	}
	if c.client != "" && st.ClientUnderlay.IsValid() {
		gw := netip.PrefixFrom(c.subnet.First(), c.subnet.Prefix().Bits())
		if err := netdev.EnsureAddr(c.client, bridgeName, gw); err != nil {
			return err
		}
	}
	for _, name := range st.VMNames() {
		vm := st.VMs[name]
		for _, node := range vm.Ports() {
			if err := netdev.EnsureTap(c.nodeNS(node), vm.Tap, bridgeName); err != nil {
				return err
			}
		}
	}
	return nil
}
