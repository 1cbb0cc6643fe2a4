package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	goqmp "github.com/digitalocean/go-qemu/qmp"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentproto"
)

const (
	// qmpReady bounds the wait for a new QEMU's QMP socket.
	qmpReady = 30 * time.Second
	// qemuQuit bounds the wait for QEMU to exit after `quit`.
	qemuQuit = 10 * time.Second
	// migrateTimeout bounds one migration, raw or through the host.
	migrateTimeout = 2 * time.Minute
)

// rawGuest is the command line the QEMU plugin recorded for a VM, to run
// the same machine without Vertigo.
type rawGuest struct {
	args []string
	// dir is the plugin's instance directory, which the recorded paths
	// (sockets, console) are under.
	dir string
}

// recordedGuest reads the command line the plugin recorded in the
// instance directory dir (spec.json, see the plugin's README).
func recordedGuest(dir string) (rawGuest, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "spec.json"))
	if err != nil {
		return rawGuest{}, err
	}
	var rec struct {
		Args []string `json:"args"`
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		return rawGuest{}, fmt.Errorf("%s: %w", filepath.Join(dir, "spec.json"), err)
	}
	if len(rec.Args) == 0 {
		return rawGuest{}, fmt.Errorf("%s records no command line", filepath.Join(dir, "spec.json"))
	}
	return rawGuest{args: rec.Args, dir: dir}, nil
}

// tcg says whether the guest runs under TCG, where the plugin pauses the
// source for the whole copy (QEMU 7.2 loses writes in a live TCG
// migration); the raw runs do the same, so that both measure one method.
func (g rawGuest) tcg() bool {
	for i := 0; i+1 < len(g.args); i++ {
		if g.args[i] == "-accel" && strings.HasPrefix(g.args[i+1], "tcg") {
			return true
		}
	}
	return false
}

// argsIn is the recorded command line moved to dir. QEMU stays a child of
// the benchmark (no -daemonize, no pid file), so that it cannot outlive a
// failed run; a destination waits for migrate-incoming.
func (g rawGuest) argsIn(dir string, incoming bool) []string {
	var args []string
	for i := 0; i < len(g.args); i++ {
		switch g.args[i] {
		case "-daemonize":
			continue
		case "-pidfile", "-incoming":
			i++ // its value goes too
			continue
		}
		args = append(args, strings.ReplaceAll(g.args[i], g.dir, dir))
	}
	if incoming {
		args = append(args, "-incoming", "defer")
	}
	return args
}

// rawQEMU is a QEMU the benchmark runs itself, driven over QMP.
type rawQEMU struct {
	dir  string
	cmd  *exec.Cmd
	done chan struct{} // closed once QEMU has exited
	mon  *goqmp.SocketMonitor
}

// startRawQEMU runs g in dir and connects to its QMP socket.
func startRawQEMU(ctx context.Context, g rawGuest, dir string, incoming bool) (*rawQEMU, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "qemu.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close() // the child holds its own descriptor
	args := g.argsIn(dir, incoming)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", args[0], err)
	}
	q := &rawQEMU{dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(q.done)
	}()
	if q.mon, err = q.dialQMP(ctx); err != nil {
		return nil, errors.Join(err, q.stop())
	}
	return q, nil
}

// dialQMP connects once QEMU has created its socket. go-qemu drops events
// while nobody asked for them: the benchmark needs none, so it never does,
// and no command can block behind an undelivered event.
func (q *rawQEMU) dialQMP(ctx context.Context) (*goqmp.SocketMonitor, error) {
	ctx, cancel := context.WithTimeout(ctx, qmpReady)
	defer cancel()
	path := filepath.Join(q.dir, "qmp.sock")
	for {
		mon, err := goqmp.NewSocketMonitor("unix", path, time.Second)
		if err == nil {
			if err = mon.Connect(); err == nil {
				return mon, nil
			}
			_ = mon.Disconnect()
		}
		select {
		case <-q.done:
			return nil, fmt.Errorf("QEMU exited before its QMP socket answered: %s", q.logTail())
		case <-ctx.Done():
			return nil, fmt.Errorf("QMP at %s: %w (last error: %v)", path, ctx.Err(), err)
		case <-time.After(statusEvery):
		}
	}
}

// execute runs a QMP command and decodes its return value into out (when
// not nil).
func (q *rawQEMU) execute(ctx context.Context, command string, args, out any) error {
	req, err := json.Marshal(struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
	}{command, args})
	if err != nil {
		return err
	}
	type result struct {
		raw []byte
		err error
	}
	// Run has no deadline: it returns when QEMU answers or its socket
	// closes, which stop ensures.
	c := make(chan result, 1)
	go func() {
		raw, err := q.mon.Run(req)
		c <- result{raw, err}
	}()
	var r result
	select {
	case r = <-c:
	case <-ctx.Done():
		return fmt.Errorf("QMP %s: %w", command, ctx.Err())
	}
	if r.err != nil {
		return fmt.Errorf("QMP %s: %w", command, r.err)
	}
	if out == nil {
		return nil
	}
	var resp struct {
		Return json.RawMessage `json:"return"`
	}
	if err := json.Unmarshal(r.raw, &resp); err != nil {
		return fmt.Errorf("QMP %s: %w", command, err)
	}
	return json.Unmarshal(resp.Return, out)
}

// touch has the guest's agent allocate and touch n bytes, and waits until
// the guest reports them used.
func (q *rawQEMU) touch(ctx context.Context, n uint64) error {
	ctx, cancel := context.WithTimeout(ctx, guestBoot)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", filepath.Join(q.dir, "agent.sock"))
	if err != nil {
		return err
	}
	defer conn.Close()
	defer context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })()
	r := agentproto.NewReader(conn)
	hello, err := readUntil(r, func(m *agentproto.Message) bool { return m.Type == agentproto.TypeHello })
	if err != nil {
		return fmt.Errorf("waiting for the guest agent's hello: %w", err)
	}
	load := &agentproto.Message{Type: agentproto.TypeRequest, ID: 1, Op: agentproto.OpLoad, MemoryBytes: n, DurationNs: int64(loadFor)}
	if err := agentproto.NewWriter(conn).Write(load); err != nil {
		return err
	}
	reply, err := readUntil(r, func(m *agentproto.Message) bool { return m.Type == agentproto.TypeReply && m.ID == load.ID })
	if err != nil {
		return fmt.Errorf("waiting for the guest agent's reply: %w", err)
	}
	if !reply.OK {
		return fmt.Errorf("the guest refused to touch %d bytes: %s", n, reply.Error)
	}
	_, err = readUntil(r, func(m *agentproto.Message) bool {
		return m.Type == agentproto.TypeMetrics && m.MemoryUsedBytes >= hello.MemoryUsedBytes+touched(n)
	})
	if err != nil {
		return fmt.Errorf("waiting for the guest to use %d more bytes: %w", touched(n), err)
	}
	return nil
}

func readUntil(r *agentproto.Reader, ok func(*agentproto.Message) bool) (*agentproto.Message, error) {
	for {
		m, err := r.Read()
		if err != nil {
			return nil, err
		}
		if ok(m) {
			return m, nil
		}
	}
}

// touched is how much more memory a guest reports used once a load of n
// bytes has touched its pages: not all of n, as the guest's other memory
// moves too.
func touched(n uint64) uint64 { return n / 10 * 9 }

// qemuMigration is the part of QMP's query-migrate the benchmark reads.
type qemuMigration struct {
	Status    string `json:"status"`
	ErrorDesc string `json:"error-desc"`
	Downtime  int64  `json:"downtime"` // ms
}

// migrateTo starts a destination in dir and live-migrates the guest to it,
// as the plugin does: the same parameters, the destination running before
// the source quits. The time spans the same steps as the plugin's: from
// the destination's start until the source is gone. On failure the
// destination is stopped and q runs on.
func (q *rawQEMU) migrateTo(ctx context.Context, g rawGuest, dir string) (*rawQEMU, migrationRun, error) {
	ctx, cancel := context.WithTimeout(ctx, migrateTimeout)
	defer cancel()
	start := time.Now()
	dst, err := startRawQEMU(ctx, g, dir, true)
	if err != nil {
		return nil, migrationRun{}, err
	}
	downtime, err := q.transfer(ctx, dst, g.tcg())
	if err != nil {
		return nil, migrationRun{}, errors.Join(err, dst.stop())
	}
	err = q.stop()
	return dst, migrationRun{total: time.Since(start), downtime: downtime}, err
}

// transfer migrates q's guest into dst, which waits for migrate-incoming,
// and returns the downtime once dst runs the guest: QEMU's, or, with the
// source paused for the copy, from the pause.
func (q *rawQEMU) transfer(ctx context.Context, dst *rawQEMU, pause bool) (time.Duration, error) {
	uri := map[string]any{"uri": "unix:" + filepath.Join(dst.dir, "migrate.sock")}
	if err := dst.execute(ctx, "migrate-incoming", uri, nil); err != nil {
		return 0, err
	}
	params := map[string]any{"max-bandwidth": migrationBandwidth, "downtime-limit": migrationDowntime.Milliseconds()}
	if err := q.execute(ctx, "migrate-set-parameters", params, nil); err != nil {
		return 0, err
	}
	var paused time.Time
	if pause {
		paused = time.Now()
		if err := q.execute(ctx, "stop", nil, nil); err != nil {
			return 0, err
		}
	}
	if err := q.execute(ctx, "migrate", uri, nil); err != nil {
		return 0, err
	}
	var st qemuMigration
	err := pollUntil(ctx, func() (bool, error) {
		if err := q.execute(ctx, "query-migrate", nil, &st); err != nil {
			return false, err
		}
		switch st.Status {
		case "failed", "cancelled":
			return false, fmt.Errorf("QEMU reports the migration %s: %s", st.Status, st.ErrorDesc)
		}
		return st.Status == "completed", nil
	})
	if err != nil {
		return 0, err
	}
	err = pollUntil(ctx, func() (bool, error) {
		var s struct {
			Status string `json:"status"`
		}
		if err := dst.execute(ctx, "query-status", nil, &s); err != nil {
			return false, err
		}
		if s.Status == "paused" { // a paused source's guest arrives paused
			return false, dst.execute(ctx, "cont", nil, nil)
		}
		return s.Status == "running", nil
	})
	if pause {
		return time.Since(paused), err
	}
	return time.Duration(st.Downtime) * time.Millisecond, err
}

// pollUntil calls f every statusEvery until it is done or fails, or ctx
// ends.
func pollUntil(ctx context.Context, f func() (bool, error)) error {
	tick := time.NewTicker(statusEvery)
	defer tick.Stop()
	for {
		if done, err := f(); err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// stop asks QEMU to quit and kills it if it does not, or if it never
// answered QMP.
func (q *rawQEMU) stop() error {
	if q.mon == nil {
		_ = q.cmd.Process.Kill()
		<-q.done
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), qemuQuit)
	defer cancel()
	// QEMU may close the socket before it answers: its exit is what counts.
	_ = q.execute(ctx, "quit", nil, nil)
	_ = q.mon.Disconnect()
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
	}
	_ = q.cmd.Process.Kill()
	<-q.done
	return fmt.Errorf("QEMU in %s did not quit within %v: killed", q.dir, qemuQuit)
}

// logTail is the end of QEMU's own output, for errors.
func (q *rawQEMU) logTail() string {
	raw, err := os.ReadFile(filepath.Join(q.dir, "qemu.log"))
	if err != nil || len(raw) == 0 {
		return "(qemu.log is empty)"
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	return "qemu.log ends: " + strings.Join(lines[max(0, len(lines)-5):], " | ")
}
