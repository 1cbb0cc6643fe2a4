package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentproto"
)

func TestStateReadsTheGuest(t *testing.T) {
	g := newFakeGuest(t, 4, map[int]bool{0: true, 1: true, 2: false})
	a, clock := newTestAgent(g, 0)
	m, err := a.state(agentproto.TypeMetrics)
	require.NoError(t, err)
	require.Equal(t, &agentproto.Message{
		Type:              agentproto.TypeMetrics,
		TUnixNano:         clock.t.UnixNano(),
		Load1:             0.52,
		Load5:             0.58,
		CPUPressureAvg10:  1.53,
		MemoryUsedBytes:   (401332 - 369072) << 10,
		MemoryCachedBytes: 4924 << 10,
		MemoryTotalBytes:  401332 << 10,
		OnlineCPUs:        2,
		UptimeNanos:       int64(42 * time.Second),
	}, m)
	require.NoError(t, m.Validate())
}

func TestStateWithoutPSI(t *testing.T) {
	g := newFakeGuest(t, 1, map[int]bool{0: true})
	require.NoError(t, os.RemoveAll(filepath.Join(g.sys.proc, "pressure")))
	a, _ := newTestAgent(g, 0)
	m, err := a.state(agentproto.TypeMetrics)
	require.NoError(t, err)
	require.Zero(t, m.CPUPressureAvg10)
	require.Zero(t, m.MemoryPressureAvg10)
}

func TestStateFailsOnBrokenProcfs(t *testing.T) {
	g := newFakeGuest(t, 1, map[int]bool{0: true})
	g.write(g.sys.proc, "loadavg", "garbage")
	a, _ := newTestAgent(g, 0)
	_, err := a.state(agentproto.TypeMetrics)
	require.ErrorContains(t, err, "loadavg")

	// A hello goes out anyway: who the agent is matters most.
	hello := a.hello()
	require.NoError(t, hello.Validate())
	require.Equal(t, "6.1.0-test", hello.KernelLabel)
	require.Equal(t, int64(42*time.Second), hello.BootNanos)
}

func TestHelloCarriesTheState(t *testing.T) {
	g := newFakeGuest(t, 4, map[int]bool{0: true})
	a, _ := newTestAgent(g, 0)
	hello := a.hello()
	require.NoError(t, hello.Validate())
	require.Equal(t, agentproto.Version, hello.Version)
	require.Equal(t, "vertigo-agent", hello.AgentName)
	require.Equal(t, 1, hello.OnlineCPUs)
	require.Equal(t, uint64(401332<<10), hello.MemoryTotalBytes)
}

func TestWatchMemoryReportsPressureAndGrowth(t *testing.T) {
	g := newFakeGuest(t, 1, map[int]bool{0: true})
	// Used 1000 of 1024MiB is past 0.85 x 924MiB.
	g.memTotal(1024<<10, 24<<10)
	a, _ := newTestAgent(g, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.watchMemory(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()

	ev := nextMessageWithin(t, a.out, 5*time.Second)
	require.Equal(t, agentproto.EventMemoryPressure, ev.Event)
	require.Equal(t, uint64(1000<<20), ev.MemoryUsedBytes)
	require.Equal(t, uint64(1024<<20), ev.MemoryTotalBytes)
	require.NoError(t, ev.Validate())

	// virtio-mem adds 256MiB: a memory_online with the new total.
	g.memTotal(1280<<10, 280<<10)
	a.sampleMemoryNow()
	ev = nextMessageWithin(t, a.out, 5*time.Second)
	require.Equal(t, agentproto.EventMemoryOnline, ev.Event)
	require.Equal(t, uint64(1280<<20), ev.MemoryTotalBytes)
}

func TestReportMetricsPostsState(t *testing.T) {
	g := newFakeGuest(t, 1, map[int]bool{0: true})
	a, _ := newTestAgent(g, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.reportMetrics(ctx)
	}()
	m := nextMessageWithin(t, a.out, 5*time.Second)
	cancel()
	<-done
	require.Equal(t, agentproto.TypeMetrics, m.Type)
	require.NoError(t, m.Validate())
}

func TestFindPort(t *testing.T) {
	root := t.TempDir()
	sys, dev := filepath.Join(root, "sys"), filepath.Join(root, "dev")
	_, ok := findPort(sys, dev, agentproto.PortName)
	require.False(t, ok)

	// Without udev: found through sysfs's name attribute.
	for name, port := range map[string]string{"org.qemu.guest_agent.0": "vport0p1", agentproto.PortName: "vport0p2"} {
		p := filepath.Join(sys, "class/virtio-ports", port, "name")
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(name+"\n"), 0o644))
	}
	_, ok = findPort(sys, dev, agentproto.PortName)
	require.False(t, ok, "the sysfs entry exists, the device node not yet")
	require.NoError(t, os.MkdirAll(dev, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dev, "vport0p2"), nil, 0o644))
	p, ok := findPort(sys, dev, agentproto.PortName)
	require.True(t, ok)
	require.Equal(t, filepath.Join(dev, "vport0p2"), p)

	// With udev's link, that wins.
	link := filepath.Join(dev, "virtio-ports", agentproto.PortName)
	require.NoError(t, os.MkdirAll(filepath.Dir(link), 0o755))
	require.NoError(t, os.Symlink("../vport0p2", link))
	p, ok = findPort(sys, dev, agentproto.PortName)
	require.True(t, ok)
	require.Equal(t, link, p)
}

func TestWaitPortGivesUpWithAClearError(t *testing.T) {
	root := t.TempDir()
	_, err := waitPort(context.Background(), root, root, agentproto.PortName, 100*time.Millisecond)
	require.ErrorContains(t, err, "virtserialport,name="+agentproto.PortName)
}

func nextMessageWithin(t *testing.T, o *outbox, d time.Duration) *agentproto.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	m, err := o.next(ctx)
	require.NoError(t, err, "no message in the outbox within %v", d)
	return m
}
