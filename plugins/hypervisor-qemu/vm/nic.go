package vm

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// tapFD is the descriptor QEMU finds the tap on: the first of
// exec.Cmd.ExtraFiles. -daemonize keeps it open in the daemon.
const tapFD = 3

// validateNIC checks the network fields of a spec: a NIC is a tap and a
// MAC; a namespace and an address only make sense with one.
func (s Spec) validateNIC() error {
	if (s.Tap == "") != (s.MAC == "") {
		return invalid("spec.mac: tap and mac go together (tap %q, mac %q)", s.Tap, s.MAC)
	}
	if s.Tap == "" {
		for _, f := range []struct{ field, value string }{{"spec.netns", s.NetNS}, {"spec.ip_cidr", s.IPCIDR}, {"spec.gateway", s.Gateway}} {
			if f.value != "" {
				return invalid("%s: %q needs spec.tap: without a tap the VM has no NIC", f.field, f.value)
			}
		}
		return nil
	}
	if err := validatePort("spec.tap", "spec.netns", s.Tap, s.NetNS); err != nil {
		return err
	}
	if hw, err := net.ParseMAC(s.MAC); err != nil || len(hw) != 6 || hw.String() != strings.ToLower(s.MAC) {
		return invalid("spec.mac: want six colon-separated hex bytes like 52:54:00:12:34:56, got %q", s.MAC)
	} else if hw[0]&1 != 0 {
		return invalid("spec.mac: %s is a multicast address", s.MAC)
	}
	if s.IPCIDR == "" {
		if s.Gateway != "" {
			return invalid("spec.gateway: %q needs spec.ip_cidr", s.Gateway)
		}
		return nil
	}
	ip, err := netip.ParsePrefix(s.IPCIDR)
	if err != nil || ip.String() != s.IPCIDR {
		return invalid("spec.ip_cidr: want an address with its prefix length like 10.77.0.5/24, got %q", s.IPCIDR)
	}
	if s.Gateway != "" {
		gw, err := netip.ParseAddr(s.Gateway)
		if err != nil || gw.String() != s.Gateway {
			return invalid("spec.gateway: want an address like 10.77.0.1, got %q", s.Gateway)
		}
		if gw.Is4() != ip.Addr().Is4() {
			return invalid("spec.gateway: %s is not of the family of spec.ip_cidr %s", s.Gateway, s.IPCIDR)
		}
	}
	return nil
}

// validatePort checks a tap's name as Linux's dev_valid_name does, and a
// namespace's as a file under /var/run/netns.
func validatePort(tapField, netnsField, tap, ns string) error {
	if tap == "" || len(tap) > 15 || tap == "." || tap == ".." || strings.ContainsAny(tap, "/: \t\n") {
		return invalid("%s: %q is not an interface name (1-15 bytes, no '/', ':' or spaces)", tapField, tap)
	}
	if ns == "." || ns == ".." || strings.ContainsAny(ns, "/\x00") {
		return invalid("%s: %q is not a network namespace name", netnsField, ns)
	}
	return nil
}

// openTap attaches to the persistent tap name in network namespace ns (""
// for the plugin's own) and returns its queue for QEMU. A namespace is a
// property of a thread: the work runs on a thread of its own, which exits
// rather than run other goroutines if it cannot get back.
func openTap(ns, name string) (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if ns == "" {
			f, err := attachTap(name)
			runtime.UnlockOSThread()
			done <- result{f, err}
			return
		}
		orig, err := netns.Get()
		if err != nil {
			done <- result{nil, fmt.Errorf("the plugin's own namespace: %w", err)}
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(ns)
		if err != nil {
			done <- result{nil, fmt.Errorf("opening the namespace: %w", err)}
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			done <- result{nil, fmt.Errorf("entering the namespace: %w", err)}
			return
		}
		f, err := attachTap(name)
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
		done <- result{f, err}
	}()
	r := <-done
	if r.err != nil {
		where := "the plugin's network namespace"
		if ns != "" {
			where = "network namespace " + ns
		}
		return nil, fmt.Errorf("tap %q in %s: %w", name, where, r.err)
	}
	return r.f, nil
}

// attachTap opens a queue of the existing tap name in the calling thread's
// namespace. It checks the tap exists first: TUNSETIFF would create a new
// one, attached to nothing.
func attachTap(name string) (*os.File, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil, err
	}
	tap, ok := link.(*netlink.Tuntap)
	if !ok || tap.Mode != netlink.TUNTAP_MODE_TAP {
		return nil, fmt.Errorf("%s is a %s, not a tap", name, link.Type())
	}
	// IFF_VNET_HDR as QEMU's own tap_open asks: it lets virtio-net pass
	// offloads through. A multi-queue tap takes only multi-queue opens.
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if tap.Flags&netlink.TUNTAP_MULTI_QUEUE != 0 {
		flags |= unix.IFF_MULTI_QUEUE
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		ifr.SetUint16(flags)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("TUNSETIFF: %w (another process holds the tap)", err)
		}
		return nil, fmt.Errorf("TUNSETIFF: %w", err)
	}
	return os.NewFile(uintptr(fd), "tap:"+name), nil
}
