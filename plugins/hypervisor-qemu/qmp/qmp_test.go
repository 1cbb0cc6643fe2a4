package qmp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// fakeQEMU speaks just enough QMP: a greeting, then one reply per command
// as the test's handler decides, written in order with any events.
type fakeQEMU struct {
	path   string
	ln     net.Listener
	handle func(cmd string, args json.RawMessage) []string
	greet  bool
}

func newFake(t *testing.T, greet bool, handle func(cmd string, args json.RawMessage) []string) *fakeQEMU {
	t.Helper()
	dir, err := os.MkdirTemp("", "qmp")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &fakeQEMU{path: filepath.Join(dir, "qmp.sock"), handle: handle, greet: greet}
	f.ln, err = net.Listen("unix", f.path)
	require.NoError(t, err)
	t.Cleanup(func() { f.ln.Close() })
	go f.serve()
	return f
}

func (f *fakeQEMU) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		go f.session(c)
	}
}

func (f *fakeQEMU) session(c net.Conn) {
	defer c.Close()
	if !f.greet {
		_, _ = io.Copy(io.Discard, c)
		return
	}
	fmt.Fprintln(c, `{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}`)
	// Commands are a JSON stream, not lines: go-qemu sends no newline.
	dec := json.NewDecoder(c)
	for {
		var cmd struct {
			Execute   string          `json:"execute"`
			Arguments json.RawMessage `json:"arguments"`
		}
		if dec.Decode(&cmd) != nil {
			return
		}
		lines := []string{`{"return": {}}`}
		if cmd.Execute != "qmp_capabilities" {
			lines = f.handle(cmd.Execute, cmd.Arguments)
		}
		for _, l := range lines {
			if l == "CLOSE" {
				return
			}
			fmt.Fprintln(c, l)
		}
	}
}

func event(name, data string) string {
	return fmt.Sprintf(`{"event": %q, "data": %s, "timestamp": {"seconds": 1700000000, "microseconds": 5}}`, name, data)
}

func dial(t *testing.T, f *fakeQEMU) *Monitor {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := Dial(ctx, f.path, hclog.NewNullLogger())
	require.NoError(t, err)
	t.Cleanup(m.Close)
	return m
}

// next is the subscription's next event, or ErrClosed once the connection
// is gone and nothing is left, or the deadline's error.
func next(t *testing.T, m *Monitor, s *Subscription, d time.Duration) (Event, error) {
	t.Helper()
	select {
	case e := <-s.C():
		return e, nil
	default:
	}
	select {
	case e := <-s.C():
		return e, nil
	case <-m.Done():
		return Event{}, ErrClosed
	case <-time.After(d):
		return Event{}, context.DeadlineExceeded
	}
}

func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// The trap go-qemu sets: an event written before a command's reply. The
// reply must still arrive, and the event must reach every subscriber that
// asked for it, and no other.
func TestEventsBeforeTheReplyReachEverySubscriber(t *testing.T) {
	f := newFake(t, true, func(cmd string, args json.RawMessage) []string {
		switch cmd {
		case "qom-set":
			return []string{
				event("MEMORY_DEVICE_SIZE_CHANGE", `{"id": "vm0", "size": 536870912}`),
				event("STOP", `{}`),
				`{"return": {}}`,
			}
		case "query-status":
			return []string{`{"return": {"status": "running", "running": true}}`}
		}
		return []string{`{"error": {"class": "CommandNotFound", "desc": "The command ` + cmd + ` has not been found"}}`}
	})
	m := dial(t, f)
	memory1 := m.Subscribe("MEMORY_DEVICE_SIZE_CHANGE")
	memory2 := m.Subscribe("MEMORY_DEVICE_SIZE_CHANGE", "RESUME")
	stops := m.Subscribe("STOP")
	other := m.Subscribe("RESUME")
	defer other.Close()

	// Several commands in a row: with an undrained event channel the first
	// would already hang.
	for range 3 {
		require.NoError(t, m.Execute(within(t, 5*time.Second), "qom-set", map[string]any{"path": "vm0", "property": "requested-size", "value": 1}, nil))
	}
	for _, s := range []*Subscription{memory1, memory2} {
		for range 3 {
			e, err := next(t, m, s, 5*time.Second)
			require.NoError(t, err)
			require.Equal(t, "MEMORY_DEVICE_SIZE_CHANGE", e.Name)
			var data struct {
				ID   string `json:"id"`
				Size uint64 `json:"size"`
			}
			require.NoError(t, e.Decode(&data))
			require.Equal(t, "vm0", data.ID)
			require.Equal(t, uint64(512<<20), data.Size)
			require.Equal(t, int64(1700000000), e.Time.Unix())
		}
	}
	e, err := next(t, m, stops, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, "STOP", e.Name)

	_, err = next(t, m, other, 50*time.Millisecond)
	require.ErrorIs(t, err, context.DeadlineExceeded, "RESUME never came: nothing for this subscriber")

	var status struct {
		Status string `json:"status"`
	}
	require.NoError(t, m.Execute(within(t, 5*time.Second), "query-status", nil, &status))
	require.Equal(t, "running", status.Status)
}

func TestACommandErrorKeepsTheConnection(t *testing.T) {
	f := newFake(t, true, func(cmd string, args json.RawMessage) []string {
		if cmd == "device_del" {
			return []string{`{"error": {"class": "GenericError", "desc": "Device 'cpu-9' not found"}}`}
		}
		return []string{`{"return": [1, 2]}`}
	})
	m := dial(t, f)
	err := m.Execute(within(t, 5*time.Second), "device_del", map[string]string{"id": "cpu-9"}, nil)
	require.ErrorContains(t, err, "qmp device_del: Device 'cpu-9' not found")
	require.NotErrorIs(t, err, ErrClosed)

	var got []int
	require.NoError(t, m.Execute(within(t, 5*time.Second), "query-x", nil, &got))
	require.Equal(t, []int{1, 2}, got)

	var wrong map[string]string
	require.ErrorContains(t, m.Execute(within(t, 5*time.Second), "query-x", nil, &wrong), "decoding return value [1, 2]")
}

func TestAHungCommandEndsWithItsContextAndClosesTheConnection(t *testing.T) {
	f := newFake(t, true, func(string, json.RawMessage) []string { return nil })
	m := dial(t, f)
	start := time.Now()
	err := m.Execute(within(t, 200*time.Millisecond), "query-status", nil, nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 5*time.Second)
	select {
	case <-m.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("connection not closed after an abandoned command")
	}
	require.ErrorIs(t, m.Execute(within(t, time.Second), "query-status", nil, nil), ErrClosed)
}

func TestQEMUGoingAwayEndsWaitersAndCommands(t *testing.T) {
	f := newFake(t, true, func(cmd string, args json.RawMessage) []string {
		if cmd == "quit" {
			return []string{event("SHUTDOWN", `{"guest": false}`), `{"return": {}}`, "CLOSE"}
		}
		return []string{`{"return": {}}`}
	})
	m := dial(t, f)
	waiter := m.Subscribe("RESUME")
	shutdown := m.Subscribe("SHUTDOWN")
	require.NoError(t, m.Execute(within(t, 5*time.Second), "quit", nil, nil))

	_, err := next(t, m, waiter, 5*time.Second)
	require.ErrorIs(t, err, ErrClosed)
	// What arrived before the end is still delivered.
	e, err := next(t, m, shutdown, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, "SHUTDOWN", e.Name)
	<-m.Done()
	require.ErrorIs(t, m.Execute(within(t, time.Second), "query-status", nil, nil), ErrClosed)
}

func TestDialGivesUpWithTheReason(t *testing.T) {
	_, err := Dial(within(t, 100*time.Millisecond), filepath.Join(t.TempDir(), "missing.sock"), hclog.NewNullLogger())
	require.ErrorContains(t, err, "missing.sock")
	require.ErrorIs(t, err, context.DeadlineExceeded)

	// A QEMU busy with another client never greets.
	f := newFake(t, false, nil)
	_, err = Dial(within(t, 200*time.Millisecond), f.path, hclog.NewNullLogger())
	require.ErrorContains(t, err, "no QMP greeting")
}
