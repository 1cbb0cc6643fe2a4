package netdev

import (
	"fmt"

	"github.com/vishvananda/netlink"
)

// EnsureTap makes a persistent tap named name exist in ns, owned by root,
// up and enslaved to bridge. An existing tap is kept (only its master and
// state are corrected), so a VM that has it open keeps running.
//
// The tap is single-queue with IFF_NO_PI|IFF_VNET_HDR, as QEMU's
// `-netdev tap,ifname=` asks for when it opens it by name (TUNSETIFF); its
// MAC is the kernel's random one, not the VM's, so that the bridge never
// takes the VM's MAC for a local address.
func EnsureTap(ns, name, bridge string) error {
	var exists bool
	err := withHandle(ns, func(h *netlink.Handle) error {
		l, err := lookup(h, name)
		if l != nil {
			if _, ok := l.(*netlink.Tuntap); !ok {
				return fmt.Errorf("%s in namespace %q is a %s, not a tap", name, ns, l.Type())
			}
			exists = true
		}
		return err
	})
	if err != nil {
		return err
	}
	if !exists {
		// A tap is created in the namespace of the thread that opens
		// /dev/net/tun, whatever netlink handle is used.
		err := Do(ns, func() error {
			tap := &netlink.Tuntap{
				LinkAttrs: netlink.LinkAttrs{Name: name},
				Mode:      netlink.TUNTAP_MODE_TAP,
				Flags:     netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR | netlink.TUNTAP_ONE_QUEUE,
			}
			err := netlink.LinkAdd(tap)
			// With Queues unset netlink closes the fds it opened itself;
			// close whatever it returns too, or the tap stays busy and QEMU
			// cannot attach to it.
			for _, f := range tap.Fds {
				f.Close()
			}
			if err != nil {
				return fmt.Errorf("creating tap %s in namespace %q: %w", name, ns, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return withHandle(ns, func(h *netlink.Handle) error {
		l, err := h.LinkByName(name)
		if err != nil {
			return err
		}
		return enslave(h, l, bridge)
	})
}
