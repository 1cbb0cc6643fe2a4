package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// uevent is one kernel object event, as the kernel broadcasts it on
// NETLINK_KOBJECT_UEVENT: "ACTION@DEVPATH\0KEY=VALUE\0...".
type uevent struct {
	Action, DevPath, Subsystem string
}

// parseUevent decodes a kernel uevent. Messages re-broadcast by udev start
// with "libudev" and carry a binary header; the agent listens to the kernel
// group only, and refuses them if they come.
func parseUevent(b []byte) (uevent, error) {
	parts := bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0})
	action, devpath, ok := strings.Cut(string(parts[0]), "@")
	if !ok || action == "" || !strings.HasPrefix(devpath, "/") {
		return uevent{}, fmt.Errorf("uevent: header %q is not ACTION@DEVPATH", truncate(string(parts[0]), 64))
	}
	ev := uevent{Action: action, DevPath: devpath}
	for _, kv := range parts[1:] {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			return uevent{}, fmt.Errorf("uevent %s: field %q is not KEY=VALUE", devpath, truncate(string(kv), 64))
		}
		switch k {
		case "ACTION":
			if v != action {
				return uevent{}, fmt.Errorf("uevent %s: ACTION=%s disagrees with header %s", devpath, v, action)
			}
		case "SUBSYSTEM":
			ev.Subsystem = v
		}
	}
	if ev.Subsystem == "" {
		return uevent{}, fmt.Errorf("uevent %s: SUBSYSTEM missing", devpath)
	}
	return ev, nil
}

// device is the last element of the event's devpath ("cpu3", "memory40").
func (e uevent) device() string { return e.DevPath[strings.LastIndexByte(e.DevPath, '/')+1:] }

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// ueventSocket receives the kernel's uevents.
type ueventSocket struct{ fd int }

// errMissedEvents: the socket's buffer overflowed and events were lost; the
// caller should rescan.
var errMissedEvents = errors.New("uevents lost (receive buffer overflow)")

func listenUevents() (*ueventSocket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, os.NewSyscallError("socket(NETLINK_KOBJECT_UEVENT)", err)
	}
	// A burst (a 1 GiB virtio-mem grow adds 8 blocks, each with add and
	// online events) must not overflow the default buffer; FORCE works for
	// root beyond rmem_max, and the plain option is the fallback.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 1<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("bind(NETLINK_KOBJECT_UEVENT)", err)
	}
	return &ueventSocket{fd: fd}, nil
}

// receive blocks for the next message.
func (s *ueventSocket) receive(buf []byte) ([]byte, error) {
	for {
		n, _, err := unix.Recvfrom(s.fd, buf, 0)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.ENOBUFS:
			return nil, errMissedEvents
		case err != nil:
			return nil, os.NewSyscallError("recvfrom(uevent)", err)
		}
		return buf[:n], nil
	}
}
