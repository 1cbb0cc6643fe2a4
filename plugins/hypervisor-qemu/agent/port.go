package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// findPort locates the virtio-serial port called name. udev would link
// /dev/virtio-ports/NAME; the initramfs has no udev, so the port is also
// looked up by its sysfs name attribute (/sys/class/virtio-ports/vportXpY/name).
func findPort(sys, dev, name string) (string, bool) {
	if p := filepath.Join(dev, "virtio-ports", name); exists(p) {
		return p, true
	}
	names, _ := filepath.Glob(filepath.Join(sys, "class/virtio-ports/*/name"))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil || strings.TrimSpace(string(b)) != name {
			continue
		}
		if p := filepath.Join(dev, filepath.Base(filepath.Dir(n))); exists(p) {
			return p, true
		}
	}
	return "", false
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// waitPort waits for the port to appear: the virtio_console module may still
// be probing when the agent starts, and the port's name arrives from QEMU
// after the device itself.
func waitPort(ctx context.Context, sys, dev, name string, within time.Duration) (string, error) {
	deadline := time.Now().Add(within)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if p, ok := findPort(sys, dev, name); ok {
			return p, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no virtio-serial port %q after %v: does QEMU have -device virtserialport,name=%s (and virtio-serial-pci)?", name, within, name)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-tick.C:
		}
	}
}

// port is the open virtio-serial port. Go registers the character device
// with its poller, so reads and writes park instead of blocking a thread.
// While no host is connected to the QEMU end, reads return EOF at once and
// writes wait.
type port struct {
	f   *os.File
	raw syscall.RawConn
}

func openPort(path string) (*port, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &port{f: f, raw: raw}, nil
}

// waitHost blocks until a host is connected to the port. The kernel reports
// POLLHUP while none is; when one connects it wakes the port's writers, so
// waiting for writability parks until then rather than spinning.
func (p *port) waitHost() error {
	var perr error
	err := p.raw.Write(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		for {
			_, perr = unix.Poll(fds, 0)
			switch {
			case perr == unix.EINTR:
				continue
			case perr != nil:
				return true
			}
			return fds[0].Revents&unix.POLLHUP == 0 && fds[0].Revents&unix.POLLOUT != 0
		}
	})
	if perr != nil {
		return os.NewSyscallError("poll", perr)
	}
	return err
}
