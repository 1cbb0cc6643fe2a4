package netdev

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// notFound says whether err is netlink's "no such link".
func notFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf)
}

// lookup returns the named link, or nil when there is none.
func lookup(h *netlink.Handle, name string) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	if notFound(err) {
		return nil, nil
	}
	return l, err
}

// Link is what the plugin checks of a device.
type Link struct {
	Index  int
	Type   string
	Master string // the bridge it is enslaved to, "" if none
	Up     bool
	MTU    int
}

// LinkInfo describes the named link in ns; ok is false when it is missing.
func LinkInfo(ns, name string) (info Link, ok bool, err error) {
	err = withHandle(ns, func(h *netlink.Handle) error {
		l, err := lookup(h, name)
		if err != nil || l == nil {
			return err
		}
		a := l.Attrs()
		info, ok = Link{Index: a.Index, Type: l.Type(), Up: a.Flags&net.FlagUp != 0, MTU: a.MTU}, true
		if a.MasterIndex != 0 {
			m, err := h.LinkByIndex(a.MasterIndex)
			if err != nil {
				return err
			}
			info.Master = m.Attrs().Name
		}
		return nil
	})
	return info, ok, err
}

// DeleteLink removes the named link from ns; a missing one is not an error.
func DeleteLink(ns, name string) error {
	return withHandle(ns, func(h *netlink.Handle) error {
		l, err := lookup(h, name)
		if err != nil || l == nil {
			return err
		}
		if err := h.LinkDel(l); err != nil && !notFound(err) {
			return fmt.Errorf("deleting %s in namespace %q: %w", name, ns, err)
		}
		return nil
	})
}

// EnsureBridge makes bridge name exist in ns, up.
func EnsureBridge(ns, name string) error {
	return withHandle(ns, func(h *netlink.Handle) error {
		l, err := lookup(h, name)
		if err != nil {
			return err
		}
		if l == nil {
			l = &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
			if err := h.LinkAdd(l); err != nil {
				return fmt.Errorf("creating bridge %s in namespace %q: %w", name, ns, err)
			}
		} else if l.Type() != "bridge" {
			return fmt.Errorf("%s in namespace %q is a %s, not a bridge", name, ns, l.Type())
		}
		return h.LinkSetUp(l)
	})
}

// enslave puts l under bridge and brings it up, unless it already is.
func enslave(h *netlink.Handle, l netlink.Link, bridge string) error {
	br, err := h.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", bridge, err)
	}
	if l.Attrs().MasterIndex != br.Attrs().Index {
		if err := h.LinkSetMaster(l, br); err != nil {
			return fmt.Errorf("enslaving %s to %s: %w", l.Attrs().Name, bridge, err)
		}
	}
	return h.LinkSetUp(l)
}

// Veth is a veth pair from a namespace's side (Name, in NS) to a port of a
// bridge in another (PeerName, enslaved to PeerBridge in PeerNS).
type Veth struct {
	NS, Name                     string
	PeerNS, PeerName, PeerBridge string
	MTU                          int
}

// EnsureVeth makes the pair exist, both ends up at MTU and the peer end
// enslaved. Half a pair (one namespace recreated) is replaced.
func EnsureVeth(v Veth) error {
	var peerOK bool
	err := withHandle(v.PeerNS, func(h *netlink.Handle) error {
		l, err := lookup(h, v.PeerName)
		peerOK = l != nil
		return err
	})
	if err != nil {
		return err
	}
	err = withHandle(v.NS, func(h *netlink.Handle) error {
		l, err := lookup(h, v.Name)
		if err != nil {
			return err
		}
		if l != nil && !peerOK {
			if err := h.LinkDel(l); err != nil {
				return fmt.Errorf("deleting half a veth pair %s: %w", v.Name, err)
			}
			l = nil
		}
		if l == nil {
			peerNS, err := nsFd(v.PeerNS)
			if err != nil {
				return err
			}
			defer peerNS.Close()
			l = &netlink.Veth{
				LinkAttrs: netlink.LinkAttrs{Name: v.Name, MTU: v.MTU},
				PeerName:  v.PeerName, PeerMTU: uint32(v.MTU),
				PeerNamespace: netlink.NsFd(int(peerNS)),
			}
			if err := h.LinkAdd(l); err != nil {
				return fmt.Errorf("creating veth %s/%s: %w", v.Name, v.PeerName, err)
			}
		}
		if err := h.LinkSetMTU(l, v.MTU); err != nil {
			return err
		}
		return h.LinkSetUp(l)
	})
	if err != nil {
		return err
	}
	return withHandle(v.PeerNS, func(h *netlink.Handle) error {
		l, err := h.LinkByName(v.PeerName)
		if err != nil {
			return err
		}
		if err := h.LinkSetMTU(l, v.MTU); err != nil {
			return err
		}
		return enslave(h, l, v.PeerBridge)
	})
}

// EnsureAddr gives device dev in ns address addr (with its prefix length).
func EnsureAddr(ns, dev string, addr netip.Prefix) error {
	return withHandle(ns, func(h *netlink.Handle) error {
		l, err := h.LinkByName(dev)
		if err != nil {
			return err
		}
		ipnet := &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), addr.Addr().BitLen())}
		if err := h.AddrReplace(l, &netlink.Addr{IPNet: ipnet}); err != nil {
			return fmt.Errorf("address %s on %s: %w", addr, dev, err)
		}
		return nil
	})
}

// VXLAN is a VTEP enslaved to a bridge.
type VXLAN struct {
	NS, Name, Bridge string
	VNI, Port        int
	Local            netip.Addr
	// Parent is the underlay device; "" lets the kernel route by Local.
	Parent string
	MTU    int
}

// EnsureVXLAN makes the VTEP exist with the given identity, learning on,
// up and enslaved. One with another VNI, port or local address is replaced.
func EnsureVXLAN(v VXLAN) error {
	return withHandle(v.NS, func(h *netlink.Handle) error {
		l, err := lookup(h, v.Name)
		if err != nil {
			return err
		}
		if l != nil {
			if x, ok := l.(*netlink.Vxlan); !ok || x.VxlanId != v.VNI || x.Port != v.Port || !x.SrcAddr.Equal(v.Local.AsSlice()) {
				if err := h.LinkDel(l); err != nil {
					return fmt.Errorf("replacing %s: %w", v.Name, err)
				}
				l = nil
			}
		}
		if l == nil {
			x := &netlink.Vxlan{
				LinkAttrs: netlink.LinkAttrs{Name: v.Name, MTU: v.MTU},
				VxlanId:   v.VNI, Port: v.Port, SrcAddr: v.Local.AsSlice(), Learning: true,
			}
			if v.Parent != "" {
				parent, err := h.LinkByName(v.Parent)
				if err != nil {
					return fmt.Errorf("underlay device %s: %w", v.Parent, err)
				}
				x.VtepDevIndex = parent.Attrs().Index
			}
			if err := h.LinkAdd(x); err != nil {
				return fmt.Errorf("creating vxlan %s in namespace %q: %w", v.Name, v.NS, err)
			}
			l = x
		}
		if v.MTU > 0 {
			if err := h.LinkSetMTU(l, v.MTU); err != nil {
				return err
			}
		}
		return enslave(h, l, v.Bridge)
	})
}
