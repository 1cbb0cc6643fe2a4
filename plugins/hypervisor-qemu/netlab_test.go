package main

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netLab is one node's network as the network plugin lays it out: a
// namespace with a bridge and two persistent taps (a VM's port and the
// port a migration moves it to), and a client in a namespace of its own,
// joined to the bridge by a veth.
type netLab struct {
	ns, clientNS string
	bridge       string
	taps         [2]string
	// subnet's .1 is nobody, .100 the client.
	client  string
	subnet  string
	gateway string
}

// newNetLab builds the lab under names of its own and removes it when the
// test ends.
func newNetLab(t *testing.T) *netLab {
	t.Helper()
	b := make([]byte, 3)
	_, err := rand.Read(b)
	require.NoError(t, err)
	id := hex.EncodeToString(b)
	l := &netLab{
		ns: "qemu-nic-" + id, clientNS: "qemu-nic-" + id + "-c",
		// Interface names have 15 bytes at most.
		bridge: "qnbr" + id, taps: [2]string{"qnta" + id, "qntb" + id},
		subnet: "10.213.7", client: "10.213.7.100", gateway: "10.213.7.1",
	}
	t.Cleanup(func() {
		for _, ns := range []string{l.ns, l.clientNS} {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Logf("ip netns del %s: %v %s", ns, err, out)
			}
		}
	})
	veth := "qnv" + id
	for _, cmd := range [][]string{
		{"netns", "add", l.ns},
		{"netns", "add", l.clientNS},
		{"-n", l.ns, "link", "add", l.bridge, "type", "bridge"},
		{"-n", l.ns, "link", "set", l.bridge, "up"},
		{"-n", l.ns, "tuntap", "add", "dev", l.taps[0], "mode", "tap"},
		{"-n", l.ns, "tuntap", "add", "dev", l.taps[1], "mode", "tap"},
		{"-n", l.ns, "link", "set", l.taps[0], "master", l.bridge, "up"},
		{"-n", l.ns, "link", "set", l.taps[1], "master", l.bridge, "up"},
		{"-n", l.ns, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", l.clientNS},
		{"-n", l.ns, "link", "set", veth, "master", l.bridge, "up"},
		{"-n", l.clientNS, "link", "set", "lo", "up"},
		{"-n", l.clientNS, "addr", "add", l.client + "/24", "dev", "eth0"},
		{"-n", l.clientNS, "link", "set", "eth0", "up"},
	} {
		out, err := exec.Command("ip", cmd...).CombinedOutput()
		require.NoError(t, err, "ip %s: %s", strings.Join(cmd, " "), out)
	}
	return l
}

// dial connects from the client's namespace.
func (l *netLab) dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	var c net.Conn
	err := inNS(l.clientNS, func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 30*time.Second)
		return err
	})
	require.NoError(t, err, "connecting to %s from the client namespace", addr)
	return c.(*net.TCPConn)
}

// inNS runs f on a thread in the lab's namespace ns: sockets belong to the
// namespace their thread was in when they were made.
func inNS(ns string, f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			done <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(ns)
		if err != nil {
			done <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			done <- err
			return
		}
		err = f()
		// A thread that cannot get back dies with the goroutine.
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}

// announcements counts the frames that announce mac on a tap of the lab:
// RARP (QEMU's self-announcement) and gratuitous ARP (a virtio-net guest's),
// from mac, whatever else the guest sends.
type announcements struct {
	fd    int
	count atomic.Int64
	done  chan struct{}
}

func (l *netLab) watchAnnouncements(t *testing.T, tap, mac string) *announcements {
	t.Helper()
	hw, err := net.ParseMAC(mac)
	require.NoError(t, err)
	a := &announcements{done: make(chan struct{})}
	require.NoError(t, inNS(l.ns, func() error {
		ifi, err := net.InterfaceByName(tap)
		if err != nil {
			return err
		}
		all := int(htons(unix.ETH_P_ALL))
		if a.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, all); err != nil {
			return err
		}
		return unix.Bind(a.fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	}))
	// The reader wakes at least every 50 ms to notice it should stop.
	require.NoError(t, unix.SetsockoptTimeval(a.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 50000}))
	go func() {
		defer close(a.done)
		buf := make([]byte, 2048)
		for {
			n, _, err := unix.Recvfrom(a.fd, buf, 0)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return // closed
			}
			if announces(buf[:n], hw) {
				a.count.Add(1)
			}
		}
	}()
	t.Cleanup(a.close)
	return a
}

// announces says whether frame is an announcement from mac.
func announces(frame []byte, mac net.HardwareAddr) bool {
	if len(frame) < 14 || !bytes.Equal(frame[6:12], mac) {
		return false
	}
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case 0x8035: // RARP
		return true
	case unix.ETH_P_ARP:
		// Sender and target protocol address are the same.
		return len(frame) >= 42 && bytes.Equal(frame[28:32], frame[38:42])
	}
	return false
}

func (a *announcements) close() {
	select {
	case <-a.done:
	default:
		unix.Shutdown(a.fd, unix.SHUT_RDWR)
		unix.Close(a.fd)
		<-a.done
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// fdbPort is the bridge port the bridge forwards mac to, "" when it has
// not learnt it.
func (l *netLab) fdbPort(t *testing.T, mac string) string {
	t.Helper()
	out, err := exec.Command("bridge", "-n", l.ns, "fdb", "show", "br", l.bridge).CombinedOutput()
	require.NoError(t, err, string(out))
	for line := range strings.SplitSeq(string(out), "\n") {
		// "52:54:00:12:34:56 dev qnta1a2b3c master qnbr1a2b3c"
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == mac && f[1] == "dev" {
			return f[2]
		}
	}
	return ""
}

// echoStream sends a pattern to the guest's echo service at a steady rate
// and checks every byte that comes back, keeping the longest time without
// one.
type echoStream struct {
	conn  *net.TCPConn
	stop  chan struct{}
	wrote chan error
	read  chan error

	mu       sync.Mutex
	sent     int64
	received int64
	last     time.Time
	stall    time.Duration
	// phaseStall is the longest stall since phase was called.
	phaseStall time.Duration
}

// Rate of the stream: a chunk every tick, about 800 KB/s, enough to see a
// pause of a few milliseconds without keeping a TCG guest busy.
const (
	echoChunk = 4 << 10
	echoTick  = 5 * time.Millisecond
)

// pattern is the stream's byte at offset i: a lost, repeated or reordered
// byte shows, since it repeats only every 16 MiB.
func pattern(i int64) byte { return byte(i ^ i>>8 ^ i>>16) }

func startEchoStream(c *net.TCPConn) *echoStream {
	s := &echoStream{conn: c, stop: make(chan struct{}), wrote: make(chan error, 1), read: make(chan error, 1), last: time.Now()}
	go func() { s.wrote <- s.write() }()
	go func() { s.read <- s.check() }()
	return s
}

func (s *echoStream) write() error {
	tick := time.NewTicker(echoTick)
	defer tick.Stop()
	buf := make([]byte, echoChunk)
	var off int64
	for {
		select {
		case <-s.stop:
			return s.conn.CloseWrite()
		case <-tick.C:
		}
		for i := range buf {
			buf[i] = pattern(off + int64(i))
		}
		if _, err := s.conn.Write(buf); err != nil {
			return fmt.Errorf("writing at byte %d: %w", off, err)
		}
		off += int64(len(buf))
		s.mu.Lock()
		s.sent = off
		s.mu.Unlock()
	}
}

// check reads the echo to its end, comparing every byte.
func (s *echoStream) check() error {
	buf := make([]byte, 64<<10)
	var off int64
	for {
		n, err := s.conn.Read(buf)
		now := time.Now()
		for i := range n {
			if buf[i] != pattern(off+int64(i)) {
				return fmt.Errorf("byte %d: got %#x, want %#x", off+int64(i), buf[i], pattern(off+int64(i)))
			}
		}
		off += int64(n)
		s.mu.Lock()
		if n > 0 {
			s.stall = max(s.stall, now.Sub(s.last))
			s.phaseStall = max(s.phaseStall, now.Sub(s.last))
			s.last, s.received = now, off
		}
		s.mu.Unlock()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading at byte %d: %w", off, err)
		}
	}
}

// phase returns the longest stall since the last call, so that each step
// of a test has its own.
func (s *echoStream) phase() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	stall := s.phaseStall
	s.phaseStall = 0
	return stall
}

// received is how many bytes came back so far.
func (s *echoStream) receivedBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.received
}

// flowing waits until more than mark bytes came back: the connection
// carries data after whatever happened since mark was taken.
func (s *echoStream) flowing(t *testing.T, mark int64, what string) {
	t.Helper()
	require.Eventually(t, func() bool { return s.receivedBytes() > mark+echoChunk }, 20*time.Second, echoTick,
		"no echo after %s (still %d bytes)", what, s.receivedBytes())
}

// finish stops sending, half-closes, and waits for the echo of everything
// sent and the guest's end of the stream. It returns the bytes that made the
// round trip and the longest stall.
func (s *echoStream) finish(t *testing.T) (int64, time.Duration) {
	t.Helper()
	close(s.stop)
	require.NoError(t, <-s.wrote)
	select {
	case err := <-s.read:
		require.NoError(t, err, "the connection never broke")
	case <-time.After(30 * time.Second):
		t.Fatalf("the echo did not end 30s after the client's EOF (%d of %d bytes back)", s.receivedBytes(), s.sent)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	require.Equal(t, s.sent, s.received, "every byte sent came back, once")
	return s.received, s.stall
}
