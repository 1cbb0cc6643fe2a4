package agentconn

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentproto"
)

// fakeAgent is the guest side of one connection, driven by the test.
type fakeAgent struct {
	conn net.Conn
	r    *agentproto.Reader
	w    *agentproto.Writer
}

func (a *fakeAgent) send(t *testing.T, m *agentproto.Message) {
	t.Helper()
	require.NoError(t, a.w.Write(m))
}

func (a *fakeAgent) raw(t *testing.T, line string) {
	t.Helper()
	_, err := fmt.Fprintln(a.conn, line)
	require.NoError(t, err)
}

func (a *fakeAgent) request(t *testing.T) *agentproto.Message {
	t.Helper()
	m, err := a.r.Read()
	require.NoError(t, err)
	require.Equal(t, agentproto.TypeRequest, m.Type)
	return m
}

// collector records what the handler is given.
type collector struct {
	mu   sync.Mutex
	msgs []*agentproto.Message
}

func (c *collector) handle(m *agentproto.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m)
}

func (c *collector) types() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.msgs {
		out = append(out, m.Type+":"+m.Event)
	}
	return out
}

func connect(t *testing.T) (*Conn, *fakeAgent, *collector) {
	t.Helper()
	c, accepted, col := connectSilence(t, Silence)
	return c, <-accepted, col
}

// connectSilence dials a socket that takes every connection, each handed
// over as a fakeAgent.
func connectSilence(t *testing.T, silence time.Duration) (*Conn, <-chan *fakeAgent, *collector) {
	t.Helper()
	dir, err := os.MkdirTemp("", "agent")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan *fakeAgent, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			accepted <- &fakeAgent{conn: c, r: agentproto.NewReader(c), w: agentproto.NewWriter(c)}
		}
	}()
	col := &collector{}
	c, err := Dial(ctxFor(t, 5*time.Second), path, silence, col.handle, hclog.NewNullLogger())
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c, accepted, col
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func metrics(cpus int, total uint64, uptime time.Duration) *agentproto.Message {
	return &agentproto.Message{Type: agentproto.TypeMetrics, TUnixNano: time.Now().UnixNano(), OnlineCPUs: cpus, MemoryTotalBytes: total, MemoryUsedBytes: total / 4, UptimeNanos: int64(uptime)}
}

func TestStateFollowsWhatTheAgentSays(t *testing.T) {
	c, agent, col := connect(t)
	agent.send(t, &agentproto.Message{Type: agentproto.TypeHello, Version: 1, OnlineCPUs: 1, MemoryTotalBytes: 480 << 20, UptimeNanos: int64(3 * time.Second)})
	s, err := c.Wait(ctxFor(t, 5*time.Second), func(s State) bool { return s.Hellos == 1 })
	require.NoError(t, err)
	require.Equal(t, State{Hellos: 1, OnlineCPUs: 1, MemoryTotal: 480 << 20, UptimeNanos: int64(3 * time.Second)}, s)

	// An event carries only what changed; the rest of the state stays.
	agent.send(t, &agentproto.Message{Type: agentproto.TypeEvent, Event: agentproto.EventCPUOnline, TUnixNano: 1, OnlineCPUs: 3})
	s, err = c.Wait(ctxFor(t, 5*time.Second), func(s State) bool { return s.OnlineCPUs == 3 })
	require.NoError(t, err)
	require.Equal(t, uint64(480<<20), s.MemoryTotal)

	agent.send(t, metrics(3, 992<<20, 4*time.Second))
	s, err = c.Wait(ctxFor(t, 5*time.Second), func(s State) bool { return s.MemoryTotal == 992<<20 })
	require.NoError(t, err)
	require.Equal(t, uint64(248<<20), s.MemoryUsed)
	require.Equal(t, c.State(), s)
	// The handler hears of a message just after the state changes.
	require.Eventually(t, func() bool { return slices.Equal([]string{"hello:", "event:cpu_online", "metrics:"}, col.types()) }, 5*time.Second, time.Millisecond,
		"the handler got every message, in order: %v", col.types())

	_, err = c.Wait(ctxFor(t, 50*time.Millisecond), func(s State) bool { return s.OnlineCPUs == 4 })
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestRepliesFindTheirRequestsInAnyOrder(t *testing.T) {
	c, agent, _ := connect(t)
	type result struct {
		reply *agentproto.Message
		err   error
	}
	results := make(chan result, 2)
	ask := func(m agentproto.Message) {
		r, err := c.Request(ctxFor(t, 5*time.Second), m)
		results <- result{r, err}
	}
	go ask(agentproto.Message{Op: agentproto.OpSetCPUs, CPUs: 2})
	first := agent.request(t)
	go ask(agentproto.Message{Op: agentproto.OpDownscale, MemoryBytes: 256 << 20})
	second := agent.request(t)
	require.NotEqual(t, first.ID, second.ID)

	agent.send(t, &agentproto.Message{Type: agentproto.TypeReply, ID: second.ID, Error: "downscale.memory_bytes: below used"})
	agent.send(t, &agentproto.Message{Type: agentproto.TypeReply, ID: first.ID, OK: true, OnlineCPUs: 2})
	got := map[string]*agentproto.Message{}
	for range 2 {
		r := <-results
		require.NoError(t, r.err)
		got[fmt.Sprint(r.reply.ID)] = r.reply
	}
	require.True(t, got[fmt.Sprint(first.ID)].OK)
	require.Equal(t, "downscale.memory_bytes: below used", got[fmt.Sprint(second.ID)].Error)
	require.Equal(t, agentproto.OpSetCPUs, first.Op)
	require.Equal(t, 2, first.CPUs)
	// The reply's count is state too.
	require.Equal(t, 2, c.State().OnlineCPUs)
}

func TestLateAndMalformedMessagesAreSkipped(t *testing.T) {
	c, agent, col := connect(t)
	_, err := c.Request(ctxFor(t, 100*time.Millisecond), agentproto.Message{Op: agentproto.OpPing})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	late := agent.request(t)

	agent.send(t, &agentproto.Message{Type: agentproto.TypeReply, ID: late.ID, OK: true})
	agent.raw(t, `{"type":"metrics","t":1,"cpus":0,"mem_total":1}`)
	agent.raw(t, `not json`)
	agent.send(t, &agentproto.Message{Type: agentproto.TypeRequest, ID: 9, Op: agentproto.OpPing})
	agent.send(t, metrics(2, 1<<30, time.Second))

	// The connection goes on: a valid message after the junk gets through,
	// and so does a new request.
	_, err = c.Wait(ctxFor(t, 5*time.Second), func(s State) bool { return s.OnlineCPUs == 2 })
	require.NoError(t, err)
	// The handler hears of a message just after the state changes.
	require.Eventually(t, func() bool { return slices.Equal([]string{"metrics:"}, col.types()) }, 5*time.Second, time.Millisecond,
		"only the valid metrics reach the handler: %v", col.types())
	go func() {
		req, err := agentproto.NewReader(agent.conn).Read()
		if err == nil {
			_ = agent.w.Write(&agentproto.Message{Type: agentproto.TypeReply, ID: req.ID, OK: true})
		}
	}()
	reply, err := c.Request(ctxFor(t, 5*time.Second), agentproto.Message{Op: agentproto.OpPing})
	require.NoError(t, err)
	require.True(t, reply.OK)
}

func TestTheAgentGoingAwayEndsWaiters(t *testing.T) {
	c, agent, _ := connect(t)
	errs := make(chan error, 2)
	go func() {
		_, err := c.Request(ctxFor(t, 10*time.Second), agentproto.Message{Op: agentproto.OpPing})
		errs <- err
	}()
	go func() {
		_, err := c.Wait(ctxFor(t, 10*time.Second), func(s State) bool { return s.OnlineCPUs == 8 })
		errs <- err
	}()
	agent.request(t)
	agent.conn.Close()
	for range 2 {
		require.ErrorIs(t, <-errs, ErrClosed)
	}
	<-c.Done()
	_, err := c.Request(ctxFor(t, time.Second), agentproto.Message{Op: agentproto.OpPing})
	require.ErrorIs(t, err, ErrClosed)
}

func TestRequestsAreValidatedBeforeSending(t *testing.T) {
	c, _, _ := connect(t)
	_, err := c.Request(ctxFor(t, time.Second), agentproto.Message{Op: "reboot"})
	require.ErrorContains(t, err, `request.op: unknown "reboot"`)
}

// An agent that has spoken and then says nothing is connected to again: a
// request in flight fails at once, the new connection's hello counts, and a
// request on it is answered.
func TestASilentAgentIsConnectedAgain(t *testing.T) {
	const silence = 200 * time.Millisecond
	c, accepted, col := connectSilence(t, silence)
	first := <-accepted

	// Before the agent's first word nothing is armed: a booting guest
	// keeps its connection however long it takes.
	select {
	case <-accepted:
		t.Fatal("connected again before the agent ever spoke")
	case <-time.After(3 * silence):
	}
	first.send(t, &agentproto.Message{Type: agentproto.TypeHello, Version: 1, OnlineCPUs: 2, MemoryTotalBytes: 1 << 30})
	errs := make(chan error, 1)
	go func() {
		_, err := c.Request(ctxFor(t, 10*time.Second), agentproto.Message{Op: agentproto.OpPing})
		errs <- err
	}()
	first.request(t) // read, never answered: the agent is stuck

	var second *fakeAgent
	select {
	case second = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("the silent agent was never connected to again")
	}
	require.ErrorIs(t, <-errs, ErrReset, "the request in flight ends with the old connection")
	second.send(t, &agentproto.Message{Type: agentproto.TypeHello, Version: 1, OnlineCPUs: 3, MemoryTotalBytes: 1 << 30})
	s, err := c.Wait(ctxFor(t, 5*time.Second), func(s State) bool { return s.Hellos == 2 })
	require.NoError(t, err)
	require.Equal(t, 3, s.OnlineCPUs)
	require.Equal(t, []string{"hello:", "hello:"}, col.types())

	go func() {
		if req, err := second.r.Read(); err == nil {
			_ = second.w.Write(&agentproto.Message{Type: agentproto.TypeReply, ID: req.ID, OK: true})
		}
	}()
	reply, err := c.Request(ctxFor(t, 5*time.Second), agentproto.Message{Op: agentproto.OpPing})
	require.NoError(t, err)
	require.True(t, reply.OK)
	select {
	case <-c.Done():
		t.Fatal("a reconnection ended the connection")
	default:
	}
}

// A socket that is gone when the plugin comes to connect again ends the
// connection, as QEMU's exit does.
func TestASilentAgentWhoseSocketIsGoneEndsTheConnection(t *testing.T) {
	c, accepted, _ := connectSilence(t, 100*time.Millisecond)
	first := <-accepted
	require.NoError(t, os.Remove(c.path))
	first.send(t, metrics(1, 1<<30, time.Second))
	select {
	case <-c.Done():
	case <-time.After(redialFor + 10*time.Second):
		t.Fatal("the connection outlived its socket")
	}
	_, err := c.Wait(ctxFor(t, time.Second), func(s State) bool { return false })
	require.ErrorIs(t, err, ErrClosed)
}
