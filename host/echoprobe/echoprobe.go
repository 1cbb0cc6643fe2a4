// Package echoprobe measures what a VM's clients see while the VM is resized
// or migrated: a TCP stream through the guest's echo service, checked byte
// for byte, with the longest time no echoed byte arrived, and UDP datagrams
// counted as lost or not. Clients run in a network namespace of their own,
// as the fleet's clients do.
package echoprobe

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/vishvananda/netns"
)

// Dial connects to addr from inside the named network namespace ("" for
// the caller's).
func Dial(ctx context.Context, namespace, network, addr string) (c net.Conn, err error) {
	err = inNamespace(namespace, func() error {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// inNamespace runs f on a thread switched into the named network namespace
// ("" runs it here). A socket stays in the namespace it was made in, so only
// making it needs the switch.
func inNamespace(namespace string, f func() error) error {
	if namespace == "" {
		return f()
	}
	done := make(chan error, 1)
	go func() {
		// Unlocked only once back in the original namespace: otherwise the
		// thread dies with the goroutine rather than serve others in the
		// wrong namespace.
		runtime.LockOSThread()
		done <- switched(namespace, f)
	}()
	return <-done
}

func switched(namespace string, f func() error) error {
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	ns, err := netns.GetFromName(namespace)
	if err != nil {
		return fmt.Errorf("network namespace %q: %w", namespace, err)
	}
	defer ns.Close()
	if err := netns.Set(ns); err != nil {
		return fmt.Errorf("entering network namespace %q: %w", namespace, err)
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		return fmt.Errorf("leaving network namespace %q: %w", namespace, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// pattern is the byte at offset i of the stream: a period coprime with any
// chunk size, so a lost, repeated or reordered chunk shows.
func pattern(i int64) byte { return byte(i % 251) }

// StreamResult is what a stream saw.
type StreamResult struct {
	Sent, Received int64
	// LongestStall is the longest time between two arrivals of echoed
	// bytes while bytes were outstanding.
	LongestStall time.Duration
	// Err is the first failure: a reset, a wrong byte, or bytes missing at
	// the end.
	Err error
}

// Stream writes a known byte pattern through an echo service and checks
// every echoed byte.
type Stream struct {
	conn  net.Conn
	chunk int
	every time.Duration

	stop     chan struct{} // ends the writer
	wrote    chan struct{} // closed when the writer has returned
	read     chan struct{} // closed when the reader has returned
	arrivals chan struct{} // a token per arrival, for Stop's drain
	closing  chan struct{} // the reader's error is Stop closing the conn

	mu    sync.Mutex
	res   StreamResult
	last  time.Time     // last arrival, or when bytes became outstanding
	phase time.Duration // the longest stall since the last TakeStall
}

// NewStream starts writing chunk bytes every interval to conn and reading
// them back.
func NewStream(conn net.Conn, chunk int, every time.Duration) *Stream {
	s := &Stream{
		conn: conn, chunk: chunk, every: every, last: time.Now(),
		stop: make(chan struct{}), wrote: make(chan struct{}), read: make(chan struct{}),
		arrivals: make(chan struct{}, 1), closing: make(chan struct{}),
	}
	go s.writeLoop()
	go s.readLoop()
	return s
}

func (s *Stream) fail(err error) {
	s.mu.Lock()
	if s.res.Err == nil {
		s.res.Err = err
	}
	s.mu.Unlock()
}

func (s *Stream) writeLoop() {
	defer close(s.wrote)
	t := time.NewTicker(s.every)
	defer t.Stop()
	buf := make([]byte, s.chunk)
	var off int64
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		for i := range buf {
			buf[i] = pattern(off + int64(i))
		}
		s.mu.Lock()
		if s.res.Sent == s.res.Received {
			s.last = time.Now() // nothing was outstanding: no stall so far
		}
		s.mu.Unlock()
		n, err := s.conn.Write(buf)
		off += int64(n)
		s.mu.Lock()
		s.res.Sent = off
		s.mu.Unlock()
		if err != nil {
			select {
			case <-s.stop: // Stop cut a write the peer would never take
			default:
				s.fail(fmt.Errorf("write at byte %d: %w", off, err))
			}
			return
		}
	}
}

func (s *Stream) readLoop() {
	defer close(s.read)
	buf := make([]byte, 64<<10)
	var off int64
	for {
		n, err := s.conn.Read(buf)
		now := time.Now()
		for i := 0; i < n; i++ {
			if buf[i] != pattern(off+int64(i)) {
				s.fail(fmt.Errorf("byte %d is %d, want %d: the stream lost, repeated or reordered bytes", off+int64(i), buf[i], pattern(off+int64(i))))
				return
			}
		}
		off += int64(n)
		if n > 0 {
			s.mu.Lock()
			s.res.LongestStall = max(s.res.LongestStall, now.Sub(s.last))
			s.phase = max(s.phase, now.Sub(s.last))
			s.last, s.res.Received = now, off
			s.mu.Unlock()
			select {
			case s.arrivals <- struct{}{}:
			default:
			}
		}
		if err != nil {
			select {
			case <-s.closing:
			default:
				s.fail(fmt.Errorf("read at byte %d: %w", off, err))
			}
			return
		}
	}
}

// Snapshot is the result so far.
func (s *Stream) Snapshot() StreamResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.res
}

// TakeStall is the longest stall since the previous TakeStall, so that each
// phase of a test (a resize, a migration) gets its own figure.
func (s *Stream) TakeStall() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.phase
	s.phase = 0
	return d
}

// Stop ends writing, waits up to drain for the outstanding echo, and closes
// the connection. Bytes not echoed by then are an error. Call it once.
func (s *Stream) Stop(drain time.Duration) StreamResult {
	close(s.stop)
	// A peer gone silent leaves the writer blocked on a full send buffer.
	_ = s.conn.SetWriteDeadline(time.Now())
	<-s.wrote
	deadline := time.NewTimer(drain)
	defer deadline.Stop()
wait:
	for {
		if r := s.Snapshot(); r.Err != nil || r.Received >= r.Sent {
			break
		}
		select {
		case <-s.arrivals:
		case <-s.read:
			break wait
		case <-deadline.C:
			break wait
		}
	}
	close(s.closing)
	s.conn.Close()
	<-s.read
	r := s.Snapshot()
	if r.Err == nil && r.Received != r.Sent {
		r.Err = fmt.Errorf("%d bytes sent, %d echoed back within %s", r.Sent, r.Received, drain)
	}
	return r
}
