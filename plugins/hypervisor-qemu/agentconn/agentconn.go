// Package agentconn is the plugin's end of the channel to one guest agent:
// QEMU's unix socket behind the virtio-serial port. Requests are matched to
// replies by id, each with its own deadline; everything else the agent says
// (hello, metrics, events) goes to one handler and updates the guest state
// that resizes wait on. A channel that falls silent is made anew: see
// Silence.
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

// ErrReset is returned to a request whose connection was made anew before
// its reply came.
var ErrReset = errors.New("agent connection reset before the reply")

// Silence is how long an agent that has spoken may say nothing before the
// plugin drops the socket and connects again. The agent reports every
// second, so silence means the guest or the channel is stuck. A new
// connection heals the channel (a lost wake-up in the guest's port, a host
// end the guest believes closed): QEMU tells the guest its host left and
// came back, which wakes the agent. Before the agent's first word nothing
// is armed: a guest boots, or a migration's destination waits, in silence.
const Silence = 10 * time.Second

// redialFor bounds reconnecting after a silence: QEMU listens on the socket
// for as long as it runs, so a socket that refuses this long is gone.
const redialFor = 5 * time.Second

// State is what the agent last said about the guest. A zero field has not
// been reported yet.
type State struct {
	// Hellos counts the agent's greetings since Dial: an agent greets
	// every new connection and greets again when it restarts.
	Hellos      int
	OnlineCPUs  int
	MemoryTotal uint64
	MemoryUsed  uint64
	UptimeNanos int64
}

// Conn is safe for concurrent use.
type Conn struct {
	path    string
	silence time.Duration
	log     hclog.Logger
	handler func(*agentproto.Message)
	done    chan struct{}
	wmu     sync.Mutex // one write, with its deadline, at a time

	mu      sync.Mutex
	conn    net.Conn
	w       *agentproto.Writer
	reset   chan struct{} // closed when conn is dropped for a new one
	heard   bool          // the agent has said something since Dial
	nextID  uint64
	pending map[uint64]chan *agentproto.Message
	state   State
	changed chan struct{} // closed and replaced at every state change
	closed  bool
}

// Dial connects to the agent socket at path, retrying until ctx ends.
// handler gets every hello, metrics and event message, in order, on the
// connection's reader goroutine: it must not block. The connection is made
// anew after silence (Silence, unless a test needs less); it ends when
// QEMU closes the socket or Close is called.
func Dial(ctx context.Context, path string, silence time.Duration, handler func(*agentproto.Message), log hclog.Logger) (*Conn, error) {
	conn, err := dial(ctx, path)
	if err != nil {
		return nil, err
	}
	c := &Conn{
		path:    path,
		silence: silence,
		log:     log,
		handler: handler,
		done:    make(chan struct{}),
		pending: map[uint64]chan *agentproto.Message{},
		changed: make(chan struct{}),
	}
	c.use(conn)
	go c.run(conn)
	return c, nil
}

func dial(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			return conn, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connecting to the guest agent at %s: %w (last error: %v)", path, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// use makes conn the connection requests go to, unless Close came first.
func (c *Conn) use(conn net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		_ = conn.Close()
		return false
	}
	c.conn, c.w, c.reset = conn, agentproto.NewWriter(conn), make(chan struct{})
	return true
}

// run reads connection after connection until one ends for good.
func (c *Conn) run(conn net.Conn) {
	defer c.Close()
	for {
		if !c.read(conn) {
			return
		}
		c.log.Warn("the guest agent has been silent; connecting again", "silent_for", c.silence)
		c.mu.Lock()
		close(c.reset) // its requests' replies would come to a closed socket
		c.mu.Unlock()
		_ = conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), redialFor)
		next, err := dial(ctx, c.path)
		cancel()
		if err != nil {
			c.log.Warn("the guest agent's socket is gone", "error", err)
			return
		}
		if !c.use(next) {
			return
		}
		conn = next
	}
}

// read handles conn's messages until it fails, and says whether it failed
// by the agent's silence.
func (c *Conn) read(conn net.Conn) (silent bool) {
	r := agentproto.NewReader(conn)
	for {
		c.mu.Lock()
		armed := c.heard
		c.mu.Unlock()
		if armed {
			_ = conn.SetReadDeadline(time.Now().Add(c.silence))
		}
		m, err := r.Read()
		var bad *agentproto.MalformedError
		var nerr net.Error
		switch {
		case errors.As(err, &bad):
			c.log.Warn("skipping a malformed agent message", "error", err)
			continue
		case errors.As(err, &nerr) && nerr.Timeout():
			return true
		case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
			return false
		case err != nil:
			c.log.Warn("reading from the guest agent", "error", err)
			return false
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
	c.heard = true
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
	conn, w, reset := c.conn, c.w, c.reset
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, req.ID)
		c.mu.Unlock()
	}()
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if err := c.write(ctx, conn, w, &req); err != nil {
		return nil, err
	}
	select {
	case reply := <-ch:
		return reply, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("agent %s request %d: no reply: %w", req.Op, req.ID, ctx.Err())
	case <-c.done:
		return nil, fmt.Errorf("agent %s request %d: %w", req.Op, req.ID, ErrClosed)
	case <-reset:
		return nil, fmt.Errorf("agent %s request %d: %w", req.Op, req.ID, ErrReset)
	}
}

// write sends one message within ctx: a guest that stopped reading fills
// the socket, and a write must not block past its caller's deadline.
func (c *Conn) write(ctx context.Context, conn net.Conn, w *agentproto.Writer, m *agentproto.Message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetWriteDeadline(deadline)
		defer func() { _ = conn.SetWriteDeadline(time.Time{}) }()
	}
	if err := w.Write(m); err != nil {
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

// Close drops the connection for good; the agent waits for the next one.
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
