package main

import (
	"errors"
	"fmt"
	"sync"
)

// planCPUs decides which CPUs to online or offline so that want of the
// present CPUs are online (want 0: all of them). It onlines the lowest
// offline CPUs and offlines the highest online ones, never cpu0, so the set
// stays compact and a later hotplug extends it at the top.
func planCPUs(present []int, online map[int]bool, want int) (up, down []int) {
	if want <= 0 || want > len(present) {
		want = len(present)
	}
	n := 0
	for _, c := range present {
		if online[c] {
			n++
		}
	}
	for _, c := range present {
		if n >= want {
			break
		}
		if !online[c] {
			up = append(up, c)
			n++
		}
	}
	for i := len(present) - 1; i >= 0 && n > want; i-- {
		if c := present[i]; c != 0 && online[c] {
			down = append(down, c)
			n--
		}
	}
	return up, down
}

// cpuController keeps the guest's online CPUs at the plugin's target. The
// target is remembered, so that CPUs hotplugged later are onlined only while
// fewer than the target are online: the plugin sets the target first, then
// hotplugs what is missing.
type cpuController struct {
	sys system

	mu   sync.Mutex
	want int // 0 until the plugin sets a target: every present CPU online
	// offlines counts the reconciliations that took CPUs offline: each
	// stalls the guest for a moment (stop_machine), which is no load.
	offlines uint64
}

// offlineCount is how many times CPUs were taken offline.
func (c *cpuController) offlineCount() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offlines
}

// cpuResult is what one reconcile did.
type cpuResult struct {
	Onlined []int
	Online  int // CPUs online afterwards
}

// setTarget validates and stores the target, then applies it.
func (c *cpuController) setTarget(want int) (cpuResult, error) {
	possible, err := c.sys.cpuList("possible")
	if err != nil {
		return cpuResult{}, err
	}
	if want < 1 || want > len(possible) {
		return cpuResult{}, fmt.Errorf("set_cpus.cpus_target: %d is not within 1..%d (the possible CPUs)", want, len(possible))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.want = want
	return c.reconcileLocked()
}

// reconcile brings the online CPUs to the target; hotplug events and the
// fallback scan call it.
func (c *cpuController) reconcile() (cpuResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reconcileLocked()
}

// reconcileLocked applies the plan CPU by CPU; a CPU the kernel refuses is
// reported, but does not stop the others.
func (c *cpuController) reconcileLocked() (cpuResult, error) {
	present, online, err := c.sys.cpus()
	if err != nil {
		return cpuResult{}, err
	}
	up, down := planCPUs(present, online, c.want)
	var res cpuResult
	var errs []error
	apply := func(cpus []int, on bool) {
		for _, cpu := range cpus {
			if err := c.sys.setCPUOnline(cpu, on); err != nil {
				errs = append(errs, err)
				continue
			}
			online[cpu] = on
			if on {
				res.Onlined = append(res.Onlined, cpu)
			}
		}
	}
	apply(up, true)
	apply(down, false)
	if len(down) > 0 {
		c.offlines++
	}
	for _, on := range online {
		if on {
			res.Online++
		}
	}
	return res, errors.Join(errs...)
}
