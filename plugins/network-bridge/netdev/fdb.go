package netdev

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// zeroMAC is the all-zero FDB entry of a VXLAN device: where frames with
// no better entry (broadcast, unknown unicast) are sent.
var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// SetFlood makes the all-zero entries of VXLAN device dev in ns exactly
// peers: head-end replication of broadcast and unknown unicast to every
// other VTEP, with no multicast in the underlay.
func SetFlood(ns, dev string, peers []netip.Addr) error {
	return withHandle(ns, func(h *netlink.Handle) error {
		l, err := h.LinkByName(dev)
		if err != nil {
			return err
		}
		entries, err := h.NeighList(l.Attrs().Index, unix.AF_BRIDGE)
		if err != nil {
			return fmt.Errorf("listing the FDB of %s: %w", dev, err)
		}
		var have []netip.Addr
		for _, e := range entries {
			if !bytes.Equal(e.HardwareAddr, zeroMAC) {
				continue
			}
			ip, ok := netip.AddrFromSlice(e.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			if slices.Contains(peers, ip) {
				have = append(have, ip)
				continue
			}
			if err := h.NeighDel(floodEntry(l, ip)); err != nil {
				return fmt.Errorf("removing flood entry %s from %s: %w", ip, dev, err)
			}
		}
		for _, p := range peers {
			if slices.Contains(have, p) {
				continue
			}
			if err := h.NeighAppend(floodEntry(l, p)); err != nil {
				return fmt.Errorf("adding flood entry %s to %s: %w", p, dev, err)
			}
		}
		return nil
	})
}

func floodEntry(l netlink.Link, peer netip.Addr) *netlink.Neigh {
	return &netlink.Neigh{
		LinkIndex:    l.Attrs().Index,
		Family:       unix.AF_BRIDGE,
		Flags:        netlink.NTF_SELF,
		State:        netlink.NUD_PERMANENT | netlink.NUD_NOARP,
		IP:           peer.AsSlice(),
		HardwareAddr: zeroMAC,
	}
}

// Flood lists the all-zero entries of VXLAN device dev in ns, sorted.
func Flood(ns, dev string) ([]netip.Addr, error) {
	var peers []netip.Addr
	err := forEntries(ns, func(_ *netlink.Handle, l netlink.Link, e netlink.Neigh) error {
		if l.Attrs().Name != dev || !bytes.Equal(e.HardwareAddr, zeroMAC) {
			return nil
		}
		if ip, ok := netip.AddrFromSlice(e.IP); ok {
			peers = append(peers, ip.Unmap())
		}
		return nil
	})
	slices.SortFunc(peers, netip.Addr.Compare)
	return peers, err
}

// Entry is a learned forwarding entry for a MAC.
type Entry struct {
	// Dev is the bridge port (or the VXLAN device, for its own table).
	Dev string
	// Remote is the VTEP a VXLAN entry sends to; invalid for bridge entries.
	Remote netip.Addr
}

// Learned lists the entries of ns's bridges and VXLAN devices that the
// kernel learned for mac, as opposed to permanent ones.
func Learned(ns string, mac net.HardwareAddr) ([]Entry, error) {
	var out []Entry
	err := forLearned(ns, mac, func(_ *netlink.Handle, l netlink.Link, e netlink.Neigh) error {
		entry := Entry{Dev: l.Attrs().Name}
		if ip, ok := netip.AddrFromSlice(e.IP); ok && e.Flags&netlink.NTF_SELF != 0 {
			entry.Remote = ip.Unmap()
		}
		out = append(out, entry)
		return nil
	})
	return out, err
}

// Forget deletes the entries learned for mac in ns, except those on device
// keep (the port the MAC now lives behind; "" keeps none), and returns how
// many it deleted. Frames for mac are then flooded until the kernel
// learns its new place, instead of following a stale entry to the node the
// MAC has left.
func Forget(ns string, mac net.HardwareAddr, keep string) (int, error) {
	n := 0
	err := forLearned(ns, mac, func(h *netlink.Handle, l netlink.Link, e netlink.Neigh) error {
		if l.Attrs().Name == keep {
			return nil
		}
		if err := h.NeighDel(&e); err != nil {
			return fmt.Errorf("forgetting %s on %s in namespace %q: %w", mac, l.Attrs().Name, ns, err)
		}
		n++
		return nil
	})
	return n, err
}

func forLearned(ns string, mac net.HardwareAddr, fn func(*netlink.Handle, netlink.Link, netlink.Neigh) error) error {
	return forEntries(ns, func(h *netlink.Handle, l netlink.Link, e netlink.Neigh) error {
		if !bytes.Equal(e.HardwareAddr, mac) || e.State&(netlink.NUD_PERMANENT|netlink.NUD_NOARP) != 0 {
			return nil
		}
		return fn(h, l, e)
	})
}

// forEntries calls fn for every bridge-family FDB entry in ns with the
// device it belongs to.
func forEntries(ns string, fn func(*netlink.Handle, netlink.Link, netlink.Neigh) error) error {
	return withHandle(ns, func(h *netlink.Handle) error {
		entries, err := h.NeighList(0, unix.AF_BRIDGE)
		if err != nil {
			return fmt.Errorf("listing forwarding entries in namespace %q: %w", ns, err)
		}
		for _, e := range entries {
			l, err := h.LinkByIndex(e.LinkIndex)
			if notFound(err) {
				continue // gone since the listing
			}
			if err != nil {
				return err
			}
			if err := fn(h, l, e); err != nil {
				return err
			}
		}
		return nil
	})
}
