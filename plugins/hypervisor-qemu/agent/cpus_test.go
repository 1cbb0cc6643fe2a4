package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentproto"
)

func TestPlanCPUs(t *testing.T) {
	for _, tc := range []struct {
		name     string
		present  []int
		online   map[int]bool
		want     int
		up, down []int
	}{
		{"no target onlines all", []int{0, 1, 2}, map[int]bool{0: true}, 0, []int{1, 2}, nil},
		{"lowest first", []int{0, 1, 2, 3}, map[int]bool{0: true}, 2, []int{1}, nil},
		{"highest offlined first", []int{0, 1, 2, 3}, map[int]bool{0: true, 1: true, 2: true, 3: true}, 2, nil, []int{3, 2}},
		{"never cpu0", []int{0, 1}, map[int]bool{0: true, 1: true}, 1, nil, []int{1}},
		{"target above present onlines what is there", []int{0, 1}, map[int]bool{0: true}, 4, []int{1}, nil},
		{"already there", []int{0, 1, 2}, map[int]bool{0: true, 2: true}, 2, nil, nil},
		{"fills gaps", []int{0, 1, 2, 3}, map[int]bool{0: true, 3: true}, 3, []int{1}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up, down := planCPUs(tc.present, tc.online, tc.want)
			require.Equal(t, tc.up, up)
			require.Equal(t, tc.down, down)
		})
	}
}

func TestCPUControllerOnlinesHotplugged(t *testing.T) {
	g := newFakeGuest(t, 4, map[int]bool{0: true})
	c := &cpuController{sys: g.sys}

	g.setCPUs(map[int]bool{0: true, 1: false, 2: false}) // two vCPUs hotplugged
	res, err := c.reconcile()
	require.NoError(t, err)
	require.Equal(t, cpuResult{Onlined: []int{1, 2}, Online: 3}, res)
	require.True(t, g.cpuOnline(1))
	require.True(t, g.cpuOnline(2))
}

func TestCPUControllerKeepsTheTarget(t *testing.T) {
	g := newFakeGuest(t, 4, map[int]bool{0: true, 1: true, 2: true})
	c := &cpuController{sys: g.sys}

	res, err := c.setTarget(1)
	require.NoError(t, err)
	require.Equal(t, 1, res.Online)
	require.Empty(t, res.Onlined)
	require.False(t, g.cpuOnline(1))
	require.False(t, g.cpuOnline(2))

	// A vCPU hotplugged now stays offline: the plugin asked for one.
	g.setCPUs(map[int]bool{0: true, 1: false, 2: false, 3: false})
	res, err = c.reconcile()
	require.NoError(t, err)
	require.Equal(t, 1, res.Online)
	require.False(t, g.cpuOnline(3))

	// Growing the target onlines the lowest offline vCPUs.
	res, err = c.setTarget(3)
	require.NoError(t, err)
	require.Equal(t, cpuResult{Onlined: []int{1, 2}, Online: 3}, res)
	require.False(t, g.cpuOnline(3))
}

func TestCPUControllerRefusesTargetsOutsidePossible(t *testing.T) {
	g := newFakeGuest(t, 4, map[int]bool{0: true})
	c := &cpuController{sys: g.sys}
	for _, n := range []int{0, -1, 5} {
		_, err := c.setTarget(n)
		require.ErrorContains(t, err, "set_cpus.cpus_target", "target %d", n)
	}
	_, err := c.setTarget(4)
	require.NoError(t, err, "a target above the present CPUs waits for hotplug")
}

func TestMemoryBlocksOnlineAsMovable(t *testing.T) {
	g := newFakeGuest(t, 1, map[int]bool{0: true})
	g.memoryBlock("memory0", "online")
	g.memoryBlock("memory32", "offline")
	g.memoryBlock("memory33", "offline")

	blocks, err := g.sys.offlineMemoryBlocks()
	require.NoError(t, err)
	require.Equal(t, []string{"memory32", "memory33"}, blocks)

	onlined, err := g.sys.onlineMemoryBlock("memory32")
	require.NoError(t, err)
	require.True(t, onlined)
	require.Equal(t, "online_movable", g.read(g.sys.sys, "devices/system/memory/memory32/state"))

	onlined, err = g.sys.onlineMemoryBlock("memory0")
	require.NoError(t, err)
	require.False(t, onlined, "already online")
	require.Equal(t, "online", g.read(g.sys.sys, "devices/system/memory/memory0/state"))
}

func TestUeventsOnlineAtOnce(t *testing.T) {
	g := newFakeGuest(t, 4, map[int]bool{0: true})
	a, _ := newTestAgent(g, 0)

	g.setCPUs(map[int]bool{0: true, 1: false})
	a.onUevent(mustParseUevent(t, cpuAddFixture))
	require.True(t, g.cpuOnline(1))
	ev := nextMessage(t, a.out)
	require.Equal(t, agentproto.EventCPUOnline, ev.Event)
	require.Equal(t, 2, ev.OnlineCPUs)
	require.NoError(t, ev.Validate())

	g.memoryBlock("memory32", "offline")
	a.onUevent(mustParseUevent(t, memoryAddFixture))
	require.Equal(t, "online_movable", g.read(g.sys.sys, "devices/system/memory/memory32/state"))
	select {
	case <-a.memoryChanged:
	default:
		t.Fatal("onlining memory must wake the memory sampler")
	}

	// The kernel onlined a block itself: only the sampler is woken.
	a.onUevent(mustParseUevent(t, memoryOnlineFixture))
	require.Len(t, a.memoryChanged, 1)
}

func TestScanCatchesMissedEvents(t *testing.T) {
	g := newFakeGuest(t, 4, map[int]bool{0: true, 1: false, 2: false})
	g.memoryBlock("memory32", "offline")
	a, _ := newTestAgent(g, 0)
	a.scan()
	require.True(t, g.cpuOnline(1))
	require.True(t, g.cpuOnline(2))
	require.Equal(t, "online_movable", g.read(g.sys.sys, "devices/system/memory/memory32/state"))
	require.Equal(t, 3, nextMessage(t, a.out).OnlineCPUs)
}

func mustParseUevent(t *testing.T, b []byte) uevent {
	ev, err := parseUevent(b)
	require.NoError(t, err)
	return ev
}

// nextMessage takes the next message from the outbox, failing after a
// second.
func nextMessage(t *testing.T, o *outbox) *agentproto.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	m, err := o.next(ctx)
	require.NoError(t, err, "no message in the outbox")
	return m
}
