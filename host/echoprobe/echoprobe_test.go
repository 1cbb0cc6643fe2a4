package echoprobe

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netns"
)

// echo serves conns with f, which is given the connection.
func echo(t *testing.T, l net.Listener, f func(net.Conn)) string {
	t.Helper()
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); f(c) }()
		}
	}()
	return l.Addr().String()
}

func listen(t *testing.T) net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return l
}

func faithful(c net.Conn) { _, _ = io.Copy(c, c) }

func TestStreamThroughAFaithfulEchoIsExact(t *testing.T) {
	addr := echo(t, listen(t), faithful)
	c, err := Dial(context.Background(), "", "tcp", addr)
	require.NoError(t, err)
	s := NewStream(c, 1000, time.Millisecond)
	require.Eventually(t, func() bool { return s.Snapshot().Received > 100_000 }, 10*time.Second, time.Millisecond)
	r := s.Stop(5 * time.Second)
	require.NoError(t, r.Err)
	require.Equal(t, r.Sent, r.Received)
}

func TestStreamCatchesALostByte(t *testing.T) {
	addr := echo(t, listen(t), func(c net.Conn) {
		buf := make([]byte, 4096)
		n, _ := io.ReadAtLeast(c, buf, 10)
		_, _ = c.Write(append(buf[:5:5], buf[6:n]...)) // byte 5 lost
		faithful(c)
	})
	c, err := Dial(context.Background(), "", "tcp", addr)
	require.NoError(t, err)
	s := NewStream(c, 100, time.Millisecond)
	require.Eventually(t, func() bool { return s.Snapshot().Err != nil }, 10*time.Second, time.Millisecond)
	require.ErrorContains(t, s.Stop(time.Second).Err, "byte 5 is")
}

func TestStreamMeasuresAStallAndAReset(t *testing.T) {
	pause := 300 * time.Millisecond
	addr := echo(t, listen(t), func(c net.Conn) {
		buf := make([]byte, 100)
		_, _ = io.ReadFull(c, buf)
		time.Sleep(pause) // the echo service stalls: what is measured
		_, _ = c.Write(buf)
		_, _ = io.ReadFull(c, buf)
		c.(*net.TCPConn).SetLinger(0) // then resets the connection
	})
	c, err := Dial(context.Background(), "", "tcp", addr)
	require.NoError(t, err)
	s := NewStream(c, 100, 5*time.Millisecond)
	require.Eventually(t, func() bool { return s.Snapshot().Err != nil }, 10*time.Second, time.Millisecond)
	require.GreaterOrEqual(t, s.TakeStall(), pause)
	require.Less(t, s.TakeStall(), pause, "taken: the next phase starts afresh")
	r := s.Stop(time.Second)
	require.GreaterOrEqual(t, r.LongestStall, pause)
	require.ErrorContains(t, r.Err, "connection reset")
}

// A peer that stops reading fills the send buffer: Stop still returns.
func TestStopReturnsWhenThePeerStopsReading(t *testing.T) {
	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) })
	addr := echo(t, listen(t), func(net.Conn) { <-stuck })
	c, err := Dial(context.Background(), "", "tcp", addr)
	require.NoError(t, err)
	s := NewStream(c, 64<<10, time.Microsecond)
	// The writer blocks once the kernel's buffers are full.
	require.Eventually(t, func() bool {
		before := s.Snapshot().Sent
		time.Sleep(50 * time.Millisecond) // a sample interval, not synchronisation
		return s.Snapshot().Sent == before
	}, 10*time.Second, time.Millisecond)
	r := s.Stop(10 * time.Millisecond)
	require.ErrorContains(t, r.Err, "echoed back within 10ms")
}

func TestStopReportsBytesNeverEchoed(t *testing.T) {
	addr := echo(t, listen(t), func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	c, err := Dial(context.Background(), "", "tcp", addr)
	require.NoError(t, err)
	s := NewStream(c, 10, time.Millisecond)
	require.Eventually(t, func() bool { return s.Snapshot().Sent > 0 }, 10*time.Second, time.Millisecond)
	require.ErrorContains(t, s.Stop(50*time.Millisecond).Err, "echoed back within 50ms")
}

// Dial really dials from inside the namespace: its loopback is not ours.
func TestDialRunsInTheNamespace(t *testing.T) {
	name := fmt.Sprintf("echoprobe-test-%d", time.Now().UnixNano()%1e6)
	out, err := exec.Command("ip", "netns", "add", name).CombinedOutput()
	require.NoError(t, err, "ip netns add (needs root and iproute2): %s", out)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	require.NoError(t, exec.Command("ip", "-n", name, "link", "set", "lo", "up").Run())

	hostSide := echo(t, listen(t), faithful)
	_, err = Dial(context.Background(), name, "tcp", hostSide)
	require.Error(t, err, "the host's loopback listener must not be reachable from the namespace")

	// A listener made inside the namespace is.
	l := make(chan net.Listener, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends in the namespace
		ns, err := netns.GetFromName(name)
		require.NoError(t, err)
		require.NoError(t, netns.Set(ns))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		l <- ln
	}()
	inside := echo(t, <-l, faithful)
	c, err := Dial(context.Background(), name, "tcp", inside)
	require.NoError(t, err)
	s := NewStream(c, 10, time.Millisecond)
	require.Eventually(t, func() bool { return s.Snapshot().Received >= 100 }, 10*time.Second, time.Millisecond)
	require.NoError(t, s.Stop(5*time.Second).Err)
}

func TestPingCountsRepliesAndLosses(t *testing.T) {
	p, err := Ping("", net.IPv4(127, 0, 0, 1), 2*time.Millisecond)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return p.Snapshot().Received >= 20 }, 10*time.Second, time.Millisecond)
	r := p.Stop(time.Second)
	require.Equal(t, 0, r.Lost(), "loopback answers every echo: %+v", r)

	// 192.0.2.1 (TEST-NET-1) has no route in an empty namespace: every
	// request is lost.
	name := fmt.Sprintf("echoprobe-ping-%d", time.Now().UnixNano()%1e6)
	require.NoError(t, exec.Command("ip", "netns", "add", name).Run())
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	require.NoError(t, exec.Command("ip", "-n", name, "link", "set", "lo", "up").Run())
	p, err = Ping(name, net.IPv4(192, 0, 2, 1), 2*time.Millisecond)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return p.Snapshot().Sent >= 10 }, 10*time.Second, time.Millisecond)
	r = p.Stop(50 * time.Millisecond)
	require.Equal(t, 0, r.Received)
	require.Equal(t, r.Sent, r.Lost())
}
