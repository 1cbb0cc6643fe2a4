// Package cgroup caps a process's CPU time, so that a VM sized at a
// fraction of a vCPU gets that fraction: the guest sees whole vCPUs, the
// host lets their threads run for vcpu_milli/1000 CPUs' worth of time per
// period. Both cgroup v2 (cpu.max) and the v1 cpu controller
// (cpu.cfs_quota_us) are supported; which one is detected, never assumed.
//
// A cap is not a share: when the host's CPUs are contended, a group gets
// CPU in proportion to its weight, and a group of default weight counts as
// one busy thread, whatever its size. So each VM's group weighs as many
// threads as it has vCPUs, and the parent group as all of them together:
// measured under TCG on 2 cores, a Postgres VM grown to 2 vCPUs lost TPS
// whenever one other busy process was about, and doubled it when QEMU got
// its two cores.
package cgroup

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Period is the accounting period: the quota is vcpu_milli * Period / 1000.
const Period = 100000 // microseconds

// minQuota is the kernel's smallest quota (1 ms).
const minQuota = 1000

// groupName is the parent group under which every VM gets its own.
const groupName = "vertigo"

// CPU places processes in per-VM groups under one parent group.
type CPU struct {
	parent string
	v2     bool
	// mu orders the parent's weight updates: each is the sum of the
	// children's weights as read at the time.
	mu sync.Mutex
}

// Detect finds a usable CPU controller under root (normally /sys/fs/cgroup)
// and prepares the parent group. The error says why there is none.
func Detect(root string) (*CPU, error) {
	controllers, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
	if err == nil {
		if !slices.Contains(strings.Fields(string(controllers)), "cpu") {
			return nil, fmt.Errorf("cgroup v2 at %s has no cpu controller (cgroup.controllers: %q)", root, strings.TrimSpace(string(controllers)))
		}
		c := &CPU{parent: filepath.Join(root, groupName), v2: true}
		// The parent group's children get the cpu controller only when
		// every level above enables it for its children.
		if err := enableCPU(root); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(c.parent, 0o755); err != nil {
			return nil, fmt.Errorf("creating %s: %w", c.parent, err)
		}
		if err := enableCPU(c.parent); err != nil {
			return nil, err
		}
		return c, nil
	}
	v1 := filepath.Join(root, "cpu")
	if _, err := os.Stat(filepath.Join(v1, "cpu.cfs_quota_us")); err != nil {
		return nil, fmt.Errorf("no cgroup v2 cpu controller at %s and no v1 cpu controller at %s", root, v1)
	}
	c := &CPU{parent: filepath.Join(v1, groupName)}
	if err := os.MkdirAll(c.parent, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", c.parent, err)
	}
	return c, nil
}

func enableCPU(dir string) error {
	file := filepath.Join(dir, "cgroup.subtree_control")
	current, err := os.ReadFile(file)
	if err == nil && slices.Contains(strings.Fields(string(current)), "cpu") {
		return nil
	}
	if err := os.WriteFile(file, []byte("+cpu"), 0o644); err != nil {
		return fmt.Errorf("enabling the cpu controller in %s: %w", dir, err)
	}
	return nil
}

// Version is "v2" or "v1".
func (c *CPU) Version() string {
	if c.v2 {
		return "v2"
	}
	return "v1"
}

// Dir is the group of the named process.
func (c *CPU) Dir(name string) string { return filepath.Join(c.parent, name) }

// Limit puts pid (with all its threads) in the group called name and caps
// it at vcpuMilli thousandths of a CPU.
func (c *CPU) Limit(name string, pid int, vcpuMilli int64) error {
	dir := c.Dir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.setQuota(name, vcpuMilli); err != nil {
		return err
	}
	if err := write(dir, "cgroup.procs", strconv.Itoa(pid)); err != nil {
		return err
	}
	return c.weighParent()
}

// SetQuota changes the cap of the group called name, and its weight with
// it.
func (c *CPU) SetQuota(name string, vcpuMilli int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.setQuota(name, vcpuMilli); err != nil {
		return err
	}
	return c.weighParent()
}

// setQuota writes the group's cap and weight. Called with mu held.
func (c *CPU) setQuota(name string, vcpuMilli int64) error {
	quota := Quota(vcpuMilli)
	dir := c.Dir(name)
	if c.v2 {
		if err := write(dir, "cpu.max", fmt.Sprintf("%d %d", quota, Period)); err != nil {
			return err
		}
	} else {
		// The quota must fit the period already set, so the period goes first.
		if err := write(dir, "cpu.cfs_period_us", strconv.Itoa(Period)); err != nil {
			return err
		}
		if err := write(dir, "cpu.cfs_quota_us", strconv.FormatInt(quota, 10)); err != nil {
			return err
		}
	}
	return write(dir, c.weightFile(), strconv.FormatInt(c.weight(vcpuMilli), 10))
}

// weight is the group weight of vcpuMilli thousandths of a CPU: a busy
// thread's (v2 cpu.weight 100, v1 cpu.shares 1024) per vCPU, within the
// kernel's range.
func (c *CPU) weight(vcpuMilli int64) int64 {
	one, lo, hi := c.weights()
	return min(max(vcpuMilli*one/1000, lo), hi)
}

// weights are a busy thread's weight and the kernel's range.
func (c *CPU) weights() (one, lo, hi int64) {
	if c.v2 {
		return 100, 1, 10000
	}
	return 1024, 2, 262144
}

func (c *CPU) weightFile() string {
	if c.v2 {
		return "cpu.weight"
	}
	return "cpu.shares"
}

// weighParent sets the parent group's weight to the sum of the weights of
// its children that hold a process (a group left empty takes no CPU), and
// never below a single thread's. Called with mu held.
func (c *CPU) weighParent() error {
	entries, err := os.ReadDir(c.parent)
	if err != nil {
		return fmt.Errorf("listing %s: %w", c.parent, err)
	}
	sum := int64(0)
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(c.parent, e.Name())
		if procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err != nil || len(bytes.TrimSpace(procs)) == 0 {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, c.weightFile()))
		if err != nil {
			continue // a group being created or removed: weighed on its next change
		}
		w, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(dir, c.weightFile()), err)
		}
		sum += w
	}
	one, _, hi := c.weights()
	return write(c.parent, c.weightFile(), strconv.FormatInt(min(max(sum, one), hi), 10))
}

// Unlimit lifts the cap of the group called name, for the length of a
// live migration: the quota is the guest's share of CPU, and QEMU's
// migration thread in the same process must not eat into it (or be
// starved by it) while it copies memory and pauses the guest.
func (c *CPU) Unlimit(name string) error {
	dir := c.Dir(name)
	if c.v2 {
		return write(dir, "cpu.max", fmt.Sprintf("max %d", Period))
	}
	return write(dir, "cpu.cfs_quota_us", "-1")
}

// Quota is the CPU time per Period, in microseconds, that vcpuMilli
// thousandths of a CPU get.
func Quota(vcpuMilli int64) int64 {
	return max(vcpuMilli*Period/1000, minQuota)
}

// Remove deletes the group called name; its processes must have exited.
// A group that does not exist is not an error.
func (c *CPU) Remove(name string) error {
	err := os.Remove(c.Dir(name))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing cgroup %s: %w", c.Dir(name), err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.weighParent()
}

func write(dir, file, value string) error {
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0o644); err != nil {
		return fmt.Errorf("writing %q to %s: %w", value, filepath.Join(dir, file), err)
	}
	return nil
}
