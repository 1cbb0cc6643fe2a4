// Package qmp is one persistent QMP connection to one QEMU, over go-qemu's
// socket monitor, with commands sent as hand-written JSON (go-qemu's
// generated helpers predate QEMU 7.2's schema).
//
// go-qemu delivers events on one unbuffered channel that must be drained at
// all times, or a command whose reply follows an event never returns. One
// goroutine per Monitor drains it and fans each event out to the
// subscriptions that asked for its name.
package qmp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	goqmp "github.com/digitalocean/go-qemu/qmp"
	"github.com/hashicorp/go-hclog"
)

// ErrClosed is returned once the connection is gone (closed by us, or QEMU
// exited).
var ErrClosed = errors.New("qmp connection closed")

// Event is one QMP event.
type Event struct {
	Name string
	Data map[string]any
	Time time.Time
}

// Decode unmarshals the event's data into v.
func (e Event) Decode(v any) error {
	b, err := json.Marshal(e.Data)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// Monitor is safe for concurrent use; commands run one at a time.
type Monitor struct {
	mon  *goqmp.SocketMonitor
	log  hclog.Logger
	done chan struct{}

	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

// Dial connects to the QMP socket at path, retrying until ctx ends: the
// socket appears shortly after QEMU starts.
func Dial(ctx context.Context, path string, log hclog.Logger) (*Monitor, error) {
	for {
		m, err := dialOnce(ctx, path, log)
		if err == nil {
			return m, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connecting to QMP at %s: %w (last error: %v)", path, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func dialOnce(ctx context.Context, path string, log hclog.Logger) (*Monitor, error) {
	mon, err := goqmp.NewSocketMonitor("unix", path, time.Second)
	if err != nil {
		return nil, err
	}
	// QEMU serves one QMP client at a time: while another holds the socket
	// the greeting never comes, and Connect has no deadline of its own.
	connected := make(chan error, 1)
	go func() { connected <- mon.Connect() }()
	select {
	case err := <-connected:
		if err != nil {
			return nil, err
		}
	case <-ctx.Done():
		// Connect still owns mon; free it once Connect gives up.
		go func() {
			if <-connected == nil {
				_ = mon.Disconnect()
			}
		}()
		return nil, fmt.Errorf("no QMP greeting (is another client connected?): %w", ctx.Err())
	}
	events, err := mon.Events(context.Background())
	if err != nil {
		_ = mon.Disconnect()
		return nil, err
	}
	m := &Monitor{mon: mon, log: log, done: make(chan struct{}), subs: map[*Subscription]struct{}{}}
	go m.pump(events)
	return m, nil
}

// pump drains go-qemu's event channel for the connection's whole life.
func (m *Monitor) pump(events <-chan goqmp.Event) {
	for e := range events {
		ev := Event{Name: e.Event, Data: e.Data, Time: time.Unix(e.Timestamp.Seconds, e.Timestamp.Microseconds*1000)}
		m.log.Debug("qmp event", "event", ev.Name, "data", ev.Data)
		m.dispatch(ev)
	}
	m.Close()
}

func (m *Monitor) dispatch(e Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for s := range m.subs {
		if !s.names[e.Name] {
			continue
		}
		select {
		case s.c <- e:
		default:
			m.log.Warn("qmp subscriber too slow; event dropped", "event", e.Name)
		}
	}
}

// Done is closed when the connection is gone.
func (m *Monitor) Done() <-chan struct{} { return m.done }

// Close drops the connection; QEMU keeps running.
func (m *Monitor) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	close(m.done)
	m.mu.Unlock()
	// Disconnect also unblocks go-qemu's reader when it is stuck handing
	// over a read error with no command waiting.
	_ = m.mon.Disconnect()
}

// Execute runs command with args (nil for none) and decodes its "return"
// into result (nil to ignore it). When ctx ends first the connection is
// closed: go-qemu cannot abandon one command and go on with the next.
func (m *Monitor) Execute(ctx context.Context, command string, args, result any) error {
	req, err := json.Marshal(goqmp.Command{Execute: command, Args: args})
	if err != nil {
		return fmt.Errorf("qmp %s: encoding arguments: %w", command, err)
	}
	select {
	case <-m.done:
		return fmt.Errorf("qmp %s: %w", command, ErrClosed)
	default:
	}
	// An expired context must not cost the connection: nothing was sent.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("qmp %s: %w", command, err)
	}
	type reply struct {
		raw []byte
		err error
	}
	replied := make(chan reply, 1)
	go func() {
		raw, err := m.mon.Run(req)
		replied <- reply{raw, err}
	}()
	var r reply
	select {
	case r = <-replied:
	case <-ctx.Done():
		m.Close()
		return fmt.Errorf("qmp %s: %w", command, ctx.Err())
	}
	if r.err != nil {
		select {
		case <-m.done:
			return fmt.Errorf("qmp %s: %w", command, ErrClosed)
		default:
		}
		if !isCommandError(r.err) {
			// The connection broke under the command.
			m.Close()
			return fmt.Errorf("qmp %s: %w: %v", command, ErrClosed, r.err)
		}
		return fmt.Errorf("qmp %s: %w", command, r.err)
	}
	if result == nil {
		return nil
	}
	var body struct {
		Return json.RawMessage `json:"return"`
	}
	if err := json.Unmarshal(r.raw, &body); err != nil {
		return fmt.Errorf("qmp %s: decoding reply: %w", command, err)
	}
	if err := json.Unmarshal(body.Return, result); err != nil {
		return fmt.Errorf("qmp %s: decoding return value %s: %w", command, abbreviate(body.Return), err)
	}
	return nil
}

// isCommandError tells QEMU's refusal of a command (go-qemu turns its
// "desc" into a plain error) from a broken connection: a socket error, or
// the empty reply go-qemu hands out once its reader has stopped.
func isCommandError(err error) bool {
	var opErr *net.OpError
	var syntax *json.SyntaxError
	return !errors.As(err, &opErr) && !errors.As(err, &syntax)
}

func abbreviate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

// Subscription receives the events named when it was made, from then on.
type Subscription struct {
	m     *Monitor
	names map[string]bool
	c     chan Event
}

// Subscribe starts collecting events with the given names. Subscribe before
// sending the command that causes them: an event may arrive before the
// command's reply.
func (m *Monitor) Subscribe(names ...string) *Subscription {
	s := &Subscription{m: m, names: map[string]bool{}, c: make(chan Event, 64)}
	for _, n := range names {
		s.names[n] = true
	}
	m.mu.Lock()
	m.subs[s] = struct{}{}
	m.mu.Unlock()
	return s
}

// Close stops the subscription.
func (s *Subscription) Close() {
	s.m.mu.Lock()
	delete(s.m.subs, s)
	s.m.mu.Unlock()
}

// C delivers the subscription's events. It is not closed when the
// connection ends: wait on the Monitor's Done too.
func (s *Subscription) C() <-chan Event { return s.c }
