// Package netdev is the kernel side of the network plugin: namespaces,
// bridges, veths, VXLAN devices, taps and forwarding entries, each made to
// exist idempotently through netlink. Namespaces are named as under
// /run/netns; "" is the namespace the plugin runs in.
package netdev

import (
	"errors"
	"fmt"
	"io/fs"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// locked runs fn on a thread of its own that fn may switch into another
// namespace, and switches it back. A thread that cannot be switched back is
// left locked, so the runtime retires it with its goroutine instead of
// handing a thread in the wrong namespace to other code.
func locked(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("reading the thread's namespace: %w", err)
			return
		}
		defer orig.Close()
		err = fn()
		if rerr := netns.Set(orig); rerr != nil {
			errc <- errors.Join(err, fmt.Errorf("switching the thread back to its namespace: %w", rerr))
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// Do runs fn on a thread inside namespace ns. Sockets fn opens stay in ns
// and may be used from any goroutine afterwards.
func Do(ns string, fn func() error) error {
	if ns == "" {
		return locked(fn)
	}
	target, err := netns.GetFromName(ns)
	if err != nil {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	defer target.Close()
	return locked(func() error {
		if err := netns.Set(target); err != nil {
			return fmt.Errorf("entering namespace %s: %w", ns, err)
		}
		return fn()
	})
}

// NamespaceExists says whether the named namespace exists.
func NamespaceExists(name string) (bool, error) {
	h, err := netns.GetFromName(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("namespace %s: %w", name, err)
	}
	h.Close()
	return true, nil
}

// EnsureNamespace creates the named namespace unless it exists, with its
// loopback up.
func EnsureNamespace(name string) error {
	exists, err := NamespaceExists(name)
	if err != nil {
		return err
	}
	if !exists {
		// netns.NewNamed switches the calling thread into the new namespace.
		err := locked(func() error {
			h, err := netns.NewNamed(name)
			if err != nil {
				return fmt.Errorf("creating namespace %s: %w", name, err)
			}
			return h.Close()
		})
		if err != nil {
			return err
		}
	}
	return withHandle(name, func(h *netlink.Handle) error {
		lo, err := h.LinkByName("lo")
		if err != nil {
			return err
		}
		return h.LinkSetUp(lo)
	})
}

// DeleteNamespace removes the named namespace; the devices in it go with
// it. A missing namespace is not an error.
func DeleteNamespace(name string) error {
	exists, err := NamespaceExists(name)
	if err != nil || !exists {
		return err
	}
	if err := netns.DeleteNamed(name); err != nil {
		return fmt.Errorf("deleting namespace %s: %w", name, err)
	}
	return nil
}

// withHandle runs fn with a netlink handle bound to namespace ns; netlink
// handles work across namespaces without switching a thread.
func withHandle(ns string, fn func(*netlink.Handle) error) error {
	var h *netlink.Handle
	var err error
	if ns == "" {
		h, err = netlink.NewHandle()
	} else {
		var nsh netns.NsHandle
		nsh, err = netns.GetFromName(ns)
		if err != nil {
			return fmt.Errorf("namespace %s: %w", ns, err)
		}
		defer nsh.Close()
		h, err = netlink.NewHandleAt(nsh)
	}
	if err != nil {
		return fmt.Errorf("netlink handle in namespace %q: %w", ns, err)
	}
	defer h.Close()
	return fn(h)
}

// nsFd opens a namespace for netlink's "move into" attributes; "" is the
// current namespace.
func nsFd(ns string) (netns.NsHandle, error) {
	if ns == "" {
		return netns.Get()
	}
	return netns.GetFromName(ns)
}
