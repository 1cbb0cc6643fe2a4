package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// system is the guest kernel as the agent sees it: procfs and sysfs, rooted
// so that tests can point it at a fake tree in a temp dir.
type system struct {
	proc, sys string
}

var realSystem = system{proc: "/proc", sys: "/sys"}

func (s system) read(root, rel string) ([]byte, error) { return os.ReadFile(filepath.Join(root, rel)) }

func (s system) memInfo() (memInfo, error) {
	b, err := s.read(s.proc, "meminfo")
	if err != nil {
		return memInfo{}, err
	}
	return parseMemInfo(b)
}

func (s system) loadAvg() (load1, load5 float64, err error) {
	b, err := s.read(s.proc, "loadavg")
	if err != nil {
		return 0, 0, err
	}
	return parseLoadAvg(b)
}

// readPressure reads a PSI file; ok is false when the kernel has no PSI
// (CONFIG_PSI off, or psi=0 on the command line: no /proc/pressure).
func (s system) readPressure(resource string) (b []byte, ok bool, err error) {
	b, err = s.read(s.proc, "pressure/"+resource)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	return b, err == nil, err
}

// pressure is "some avg10" of a PSI resource, or 0 without PSI.
func (s system) pressure(resource string) (float64, error) {
	b, ok, err := s.readPressure(resource)
	if !ok {
		return 0, err
	}
	return parsePressureSome10(b)
}

// pressureTotal is "some total" of a PSI resource; ok is false without PSI.
func (s system) pressureTotal(resource string) (total uint64, ok bool, err error) {
	b, ok, err := s.readPressure(resource)
	if !ok {
		return 0, false, err
	}
	total, err = parsePressureSomeTotal(b)
	return total, err == nil, err
}

func (s system) cpuDir(cpu int) string {
	return filepath.Join(s.sys, "devices/system/cpu", "cpu"+strconv.Itoa(cpu))
}

// cpuList reads one of the kernel's CPU lists: "present", "possible".
func (s system) cpuList(name string) ([]int, error) {
	b, err := s.read(s.sys, "devices/system/cpu/"+name)
	if err != nil {
		return nil, err
	}
	return parseCPUList(string(b))
}

// cpus returns the present CPUs and which of them are online. A CPU without
// an online file (cpu0 on x86) cannot be offlined and counts as online.
func (s system) cpus() (present []int, online map[int]bool, err error) {
	if present, err = s.cpuList("present"); err != nil {
		return nil, nil, err
	}
	online = make(map[int]bool, len(present))
	for _, c := range present {
		b, err := os.ReadFile(filepath.Join(s.cpuDir(c), "online"))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			online[c] = true
		case err != nil:
			return nil, nil, err
		default:
			online[c] = strings.TrimSpace(string(b)) == "1"
		}
	}
	return present, online, nil
}

func (s system) onlineCPUCount() (int, error) {
	_, online, err := s.cpus()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, on := range online {
		if on {
			n++
		}
	}
	return n, nil
}

func (s system) setCPUOnline(cpu int, on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	if err := os.WriteFile(filepath.Join(s.cpuDir(cpu), "online"), []byte(v), 0); err != nil {
		return fmt.Errorf("cpu%d: online=%s: %w", cpu, v, err)
	}
	return nil
}

// offlineMemoryBlocks lists the memory blocks (memoryN) still offline.
func (s system) offlineMemoryBlocks() ([]string, error) {
	dirs, err := filepath.Glob(filepath.Join(s.sys, "devices/system/memory/memory*"))
	if err != nil {
		return nil, err
	}
	var offline []string
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "state"))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed while we looked
			}
			return nil, err
		}
		if strings.TrimSpace(string(b)) == "offline" {
			offline = append(offline, filepath.Base(d))
		}
	}
	return offline, nil
}

// onlineMemoryBlock onlines a block as movable, so that it can be unplugged
// again on a downscale; a block the kernel cannot make movable (it borders
// kernel memory) is onlined as normal memory rather than left unused.
// It reports whether the block was offline.
func (s system) onlineMemoryBlock(block string) (bool, error) {
	state := filepath.Join(s.sys, "devices/system/memory", block, "state")
	b, err := os.ReadFile(state)
	if err != nil {
		return false, err
	}
	if strings.TrimSpace(string(b)) != "offline" {
		return false, nil
	}
	if err := os.WriteFile(state, []byte("online_movable"), 0); err == nil {
		return true, nil
	}
	err = os.WriteFile(state, []byte("online"), 0)
	if err == nil {
		return true, nil
	}
	// The kernel onlines blocks itself with memhp_default_state, and may
	// have done so since the read: EINVAL then, and nothing to do.
	if b, rerr := os.ReadFile(state); rerr == nil && strings.TrimSpace(string(b)) != "offline" {
		return false, nil
	}
	return false, fmt.Errorf("%s: online: %w", block, err)
}

// powerOff syncs the filesystems and powers the guest off. Under QEMU's
// -no-reboot the process then exits, which is what a stop waits for.
func (s system) powerOff() {
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}
