// Package proc pins and watches processes that are not the plugin's
// children: a QEMU started with -daemonize is reparented away at once, so
// it can be neither waited for nor safely signalled by pid alone. A pidfd
// fixes both: it names one process for good (a reused pid is another
// process), and it becomes readable when that process exits.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Process is a live process held by a pidfd.
type Process struct {
	pid    int
	file   *os.File
	exited chan struct{}
}

// Open pins pid. It fails when no such process exists.
func Open(pid int) (*Process, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("pid %d: must be > 0", pid)
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	// Non-blocking, so os registers it with the runtime's poller and a
	// waiting goroutine costs no thread.
	p := &Process{pid: pid, file: os.NewFile(uintptr(fd), fmt.Sprintf("pidfd:%d", pid)), exited: make(chan struct{})}
	go p.watch()
	return p, nil
}

// Attach pins pid and checks that it is still the process recorded: the
// same command line and, when startTime is not 0, the same start time.
// Pinning first makes the check final: the pid cannot be reused after it.
func Attach(pid int, args []string, startTime uint64) (*Process, error) {
	p, err := Open(pid)
	if err != nil {
		return nil, err
	}
	if err := p.matches(args, startTime); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *Process) matches(args []string, startTime uint64) error {
	got, err := Cmdline(p.pid)
	if err != nil {
		return err
	}
	if !slices.Equal(got, args) {
		return fmt.Errorf("pid %d is %q, not the recorded process %q (the pid was reused)", p.pid, abbreviate(got), abbreviate(args))
	}
	if startTime == 0 {
		return nil
	}
	st, err := StartTime(p.pid)
	if err != nil {
		return err
	}
	if st != startTime {
		return fmt.Errorf("pid %d started at tick %d, not at the recorded %d (the pid was reused)", p.pid, st, startTime)
	}
	return nil
}

func (p *Process) watch() {
	rc, err := p.file.SyscallConn()
	if err != nil {
		return
	}
	err = rc.Read(func(fd uintptr) bool {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
		return err == nil && n > 0
	})
	// An error means Close: the process did not exit, we let go of it.
	if err == nil {
		close(p.exited)
	}
}

// Exited is closed when the process has exited (a zombie counts).
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Alive reports whether the process has not exited yet.
func (p *Process) Alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Signal sends sig to this process, never to a later one with its pid.
func (p *Process) Signal(sig unix.Signal) error {
	rc, err := p.file.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.PidfdSendSignal(int(fd), sig, nil, 0) }); err != nil {
		return err
	}
	if errors.Is(serr, unix.ESRCH) {
		return nil
	}
	return serr
}

// Close lets go of the process; it keeps running.
func (p *Process) Close() error { return p.file.Close() }

// Cmdline is the argument vector of pid, from /proc.
func Cmdline(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return nil, nil
	}
	return strings.Split(string(b), "\x00"), nil
}

// StartTime is when pid started, in clock ticks since boot (field 22 of
// /proc/PID/stat): with the pid, it names one process across pid reuse.
func StartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStartTime(string(b))
}

// parseStartTime reads field 22 of a stat line. The command (field 2) is in
// parentheses and may itself contain spaces and parentheses: fields are
// counted after its last ')'.
func parseStartTime(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat line %q: no command field", abbreviate([]string{stat}))
	}
	fields := strings.Fields(stat[i+1:])
	// fields[0] is field 3 (state), so field 22 is fields[19].
	if len(fields) < 20 {
		return 0, fmt.Errorf("stat line has %d fields after the command, want at least 20", len(fields))
	}
	v, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat field 22 (starttime): %w", err)
	}
	return v, nil
}

func abbreviate(args []string) string {
	s := strings.Join(args, " ")
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}
