// Package agentconn is the plugin's end of the channel to one guest agent:
// QEMU's unix socket behind the virtio-serial port. Requests are matched to
// replies by id, each with its own deadline; everything else the agent says
// (hello, metrics, events) goes to one handler and updates the guest state
// that resizes wait on.
package agentconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentproto"
)

// ErrClosed is returned once the connection is gone.
var ErrClosed = errors.New("agent connection closed")

// State is what the agent last said about the guest. A zero field has not
// been reported yet.
type State struct {
	// Hellos counts the agent's greetings on this connection: an agent
	// greets every new connection and greets again when it restarts.
	Hellos      int
	OnlineCPUs  int
	MemoryTotal uint64
	MemoryUsed  uint64
	UptimeNanos int64
}

// Conn is safe for concurrent use.
type Conn struct {
	conn    net.Conn
	w       *agentproto.Writer
	log     hclog.Logger
	handler func(*agentproto.Message)
	done    chan struct{}
	wmu     sync.Mutex // one write, with its deadline, at a time

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan *agentproto.Message
	state   State
	changed chan struct{} // closed and replaced at every state change
	closed  bool
}

// Dial connects to the agent socket at path, retrying until ctx ends.
// handler gets every hello, metrics and event message, in order, on the
// connection's reader goroutine: it must not block.
func Dial(ctx context.Context, path string, handler func(*agentproto.Message), log hclog.Logger) (*Conn, error) {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			return newConn(conn, handler, log), nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connecting to the guest agent at %s: %w (last error: %v)", path, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func newConn(conn net.Conn, handler func(*agentproto.Message), log hclog.Logger) *Conn {
	c := &Conn{
		conn:    conn,
		w:       agentproto.NewWriter(conn),
		log:     log,
		handler: handler,
		done:    make(chan struct{}),
		pending: map[uint64]chan *agentproto.Message{},
		changed: make(chan struct{}),
	}
	go c.read()
	return c
}

func (c *Conn) read() {
	defer c.Close()
	r := agentproto.NewReader(c.conn)
	for {
		m, err := r.Read()
		var bad *agentproto.MalformedError
		switch {
		case errors.As(err, &bad):
			c.log.Warn("skipping a malformed agent message", "error", err)
			continue
		case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
			return
		case err != nil:
			c.log.Warn("reading from the guest agent", "error", err)
			return
		}
		c.observe(m)
		if m.Type == agentproto.TypeReply {
			c.deliver(m)
			continue
		}
		if m.Type == agentproto.TypeRequest {
			c.log.Warn("skipping a request from the guest agent: only the plugin asks", "op", m.Op)
			continue
		}
		c.handler(m)
	}
}

// observe folds the state fields any message carries into State.
func (c *Conn) observe(m *agentproto.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.state
	if m.Type == agentproto.TypeHello {
		s.Hellos++
	}
	if m.OnlineCPUs > 0 {
		s.OnlineCPUs = m.OnlineCPUs
	}
	if m.MemoryTotalBytes > 0 {
		s.MemoryTotal, s.MemoryUsed = m.MemoryTotalBytes, m.MemoryUsedBytes
	}
	if m.UptimeNanos > 0 {
		s.UptimeNanos = m.UptimeNanos
	}
	if s != c.state {
		c.state = s
		close(c.changed)
		c.changed = make(chan struct{})
	}
}

func (c *Conn) deliver(m *agentproto.Message) {
	c.mu.Lock()
	ch, ok := c.pending[m.ID]
	delete(c.pending, m.ID)
	c.mu.Unlock()
	if !ok {
		c.log.Warn("skipping a reply nobody waits for (late, or never asked)", "id", m.ID, "ok", m.OK, "error", m.Error)
		return
	}
	ch <- m
}

// Request sends req (its type and id are set here) and returns the reply.
// A reply with an error is returned as it is: a refusal is an answer.
func (c *Conn) Request(ctx context.Context, req agentproto.Message) (*agentproto.Message, error) {
	req.Type = agentproto.TypeRequest
	ch := make(chan *agentproto.Message, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.nextID++
	req.ID = c.nextID
	c.pending[req.ID] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, req.ID)
		c.mu.Unlock()
	}()
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if err := c.write(ctx, &req); err != nil {
		return nil, err
	}
	select {
	case reply := <-ch:
		return reply, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("agent %s request %d: no reply: %w", req.Op, req.ID, ctx.Err())
	case <-c.done:
		return nil, fmt.Errorf("agent %s request %d: %w", req.Op, req.ID, ErrClosed)
	}
}

// write sends one message within ctx: a guest that stopped reading fills
// the socket, and a write must not block past its caller's deadline.
func (c *Conn) write(ctx context.Context, m *agentproto.Message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if deadline, ok := ctx.Deadline(); ok {
		_ = c.conn.SetWriteDeadline(deadline)
		defer func() { _ = c.conn.SetWriteDeadline(time.Time{}) }()
	}
	if err := c.w.Write(m); err != nil {
		return fmt.Errorf("sending %s to the guest agent: %w", m.Op, err)
	}
	return nil
}

// State is the guest state last reported.
func (c *Conn) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Wait returns the first state for which cond is true, the current one
// included.
func (c *Conn) Wait(ctx context.Context, cond func(State) bool) (State, error) {
	for {
		c.mu.Lock()
		s, changed := c.state, c.changed
		c.mu.Unlock()
		if cond(s) {
			return s, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return s, ctx.Err()
		case <-c.done:
			return s, ErrClosed
		}
	}
}

// Done is closed when the connection is gone.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Close drops the connection; the agent waits for the next one.
func (c *Conn) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	close(c.done)
	_ = c.conn.Close()
}
