package pg_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentproto"
)

// The guest's and the client's addresses on a tap in a namespace of the
// test's own: inside 10.0.0.0/8, the subnet pg_hba.conf trusts.
const (
	guestIP  = "10.250.0.2"
	clientIP = "10.250.0.1"
	tap      = "pgtap0"
)

// TestPostgresAnswersPgbenchAndSurvivesAKill boots the Postgres image as
// the QEMU plugin does (TCG, the root as a qcow2 overlay on virtio-blk, the
// address on the kernel command line), runs Debian's pgbench against it
// from the host, checks the agent's database signals while it runs, then
// kills QEMU and boots the same disk again: the transactions are there.
func TestPostgresAnswersPgbenchAndSurvivesAKill(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: a network namespace, a tap, debootstrap")
	}
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "pgbench", "pg_isready", "psql", "ip"} {
		_, err := exec.LookPath(tool)
		require.NoError(t, err, "%s is missing: apt-get install -y --no-install-recommends qemu-system-x86 qemu-utils postgresql-client iproute2 debootstrap busybox-static", tool)
	}
	img := buildImage(t)
	ns := netns(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", img.rootfs, disk)

	v := boot(t, img, ns, disk)
	ready := v.awaitPostgres(t, ns)
	t.Logf("QEMU start to pg_isready: %v", ready.Round(time.Millisecond))

	pgbench(t, ns, "-i", "-s", "1", "-q")
	bench := exec.Command("ip", "netns", "exec", ns, "pgbench", "-h", guestIP, "-U", "vertigo", "-c", "4", "-j", "2", "-T", "5", "vertigo")
	bench.Env = append(os.Environ(), "PGPASSWORD=vertigo")
	var out bytes.Buffer
	bench.Stdout, bench.Stderr = &out, &out
	require.NoError(t, bench.Start())

	// Four clients, and at least one caught running a statement.
	busy := v.agent.await(t, 20*time.Second, "metrics with 4 connections, one active", func(m *agentproto.Message) bool {
		return m.Type == agentproto.TypeMetrics && m.DB != nil && m.DB.Connections >= 4 && m.DB.ActiveConnections >= 1
	})
	require.NoError(t, bench.Wait(), "pgbench:\n%s", out.String())
	t.Logf("agent during pgbench: %d connections, %d active, working set %d MiB; pgbench:\n%s",
		busy.DB.Connections, busy.DB.ActiveConnections, busy.DB.WorkingSetBytes>>20, out.String())
	require.Greater(t, busy.DB.WorkingSetBytes, uint64(16<<20), "shared buffers and the relations pgbench touched")
	require.Regexp(t, `number of failed transactions: 0 `, out.String())
	done := processed(t, out.String())
	require.Positive(t, done)
	idle := v.agent.await(t, 10*time.Second, "metrics after pgbench disconnected", func(m *agentproto.Message) bool {
		return m.Type == agentproto.TypeMetrics && m.DB != nil && m.DB.Connections == 0
	})
	require.Zero(t, idle.DB.ActiveConnections)

	// A kill, not a shutdown: the next boot replays the ext4 journal and
	// Postgres recovers from its WAL, past the stale postmaster.pid.
	v.kill()
	v = boot(t, img, ns, disk)
	ready = v.awaitPostgres(t, ns)
	t.Logf("QEMU start to pg_isready after a kill: %v", ready.Round(time.Millisecond))
	rows := psql(t, ns, "SELECT count(*) FROM pgbench_history")
	require.Equal(t, strconv.Itoa(done), rows, "every transaction pgbench counted is on the disk")
}

type image struct{ kernel, initrd, rootfs string }

// buildImage runs build-pg.sh, which rebuilds only what changed: a minute
// the first time, seconds after.
func buildImage(t *testing.T) image {
	repo, err := filepath.Abs("../../../..")
	require.NoError(t, err)
	out := filepath.Join(repo, "build/guest-postgres")
	start := time.Now()
	cmd := exec.Command("./plugins/hypervisor-qemu/guest/build-pg.sh", out)
	cmd.Dir = repo
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "building the Postgres image failed; run `plugins/hypervisor-qemu/guest/build-pg.sh build/guest-postgres` from the repository root:\n%s", b)
	t.Logf("build-pg.sh: %v", time.Since(start).Round(time.Millisecond))
	return image{kernel: filepath.Join(out, "vmlinux"), initrd: filepath.Join(out, "initramfs.cpio.gz"), rootfs: filepath.Join(out, "rootfs.img")}
}

// netns makes a namespace holding the tap the guest's NIC uses, with the
// client's address on it; QEMU and the clients run inside it.
func netns(t *testing.T) string {
	ns := fmt.Sprintf("pg-test-%d", os.Getpid())
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"tuntap", "add", "dev", tap, "mode", "tap"},
		{"addr", "add", clientIP + "/24", "dev", tap},
		{"link", "set", tap, "up"},
	} {
		run(t, "ip", append([]string{"-n", ns}, args...)...)
	}
	return ns
}

// vm is one QEMU process running the image.
type vm struct {
	cmd     *exec.Cmd
	started time.Time
	exited  chan struct{}
	agent   *agentConn
}

func boot(t *testing.T, img image, ns, disk string) *vm {
	dir := t.TempDir()
	cmd := exec.Command("ip", "netns", "exec", ns, "qemu-system-x86_64",
		"-accel", "tcg", "-machine", "q35", "-nodefaults", "-no-reboot", "-nographic",
		"-smp", "cpus=1,maxcpus=2", "-m", "512M",
		"-kernel", img.kernel, "-initrd", img.initrd,
		"-append", fmt.Sprintf("console=ttyS0 quiet panic=1 vertigo.ip=%s/24 vertigo.gw=%s", guestIP, clientIP),
		"-serial", "file:"+filepath.Join(dir, "console.log"),
		"-drive", "file="+disk+",if=none,id=disk0,format=qcow2",
		"-device", "virtio-blk-pci,drive=disk0",
		"-netdev", "tap,id=net0,ifname="+tap+",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=net0,mac=52:54:00:70:67:01,romfile=",
		"-device", "virtio-serial-pci",
		"-chardev", "socket,id=agent0,path="+filepath.Join(dir, "agent.sock")+",server=on,wait=off",
		"-device", "virtserialport,chardev=agent0,name="+agentproto.PortName,
	)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	require.NoError(t, cmd.Start())
	v := &vm{cmd: cmd, started: time.Now(), exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(v.exited)
	}()
	t.Cleanup(func() {
		v.kill()
		if t.Failed() {
			console, _ := os.ReadFile(filepath.Join(dir, "console.log"))
			t.Logf("QEMU output:\n%s\nguest console:\n%s", stderr.String(), console)
		}
	})
	v.agent = dialAgent(t, filepath.Join(dir, "agent.sock"), v.exited)
	return v
}

func (v *vm) kill() {
	_ = v.cmd.Process.Kill()
	<-v.exited
}

// awaitPostgres polls pg_isready until Postgres accepts connections and
// returns the time since QEMU started. Polling is the only way to learn
// it from outside the guest, as a client would. Ready takes 10-14 s on
// this 2-core machine, and much longer when other TCG guests compete for
// it: the bound only catches a guest that never gets there.
func (v *vm) awaitPostgres(t *testing.T, ns string) time.Duration {
	t.Helper()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(90 * time.Second)
	for {
		if exec.Command("ip", "netns", "exec", ns, "pg_isready", "-q", "-h", guestIP, "-t", "1").Run() == nil {
			return time.Since(v.started)
		}
		select {
		case <-tick.C:
		case <-v.exited:
			t.Fatal("QEMU exited before Postgres was ready")
		case <-deadline:
			t.Fatal("Postgres was not ready within 90s of QEMU starting")
		}
	}
}

func pgbench(t *testing.T, ns string, args ...string) string {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, "pgbench", "-h", guestIP, "-U", "vertigo"}, append(args, "vertigo")...)...)
	cmd.Env = append(os.Environ(), "PGPASSWORD=vertigo")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "pgbench %v:\n%s", args, b)
	return string(b)
}

func psql(t *testing.T, ns, query string) string {
	cmd := exec.Command("ip", "netns", "exec", ns, "psql", "-h", guestIP, "-U", "vertigo", "-d", "vertigo", "-XAtc", query)
	cmd.Env = append(os.Environ(), "PGPASSWORD=vertigo")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "psql %q:\n%s", query, b)
	return strings.TrimSpace(string(b))
}

var processedRE = regexp.MustCompile(`number of transactions actually processed: (\d+)`)

func processed(t *testing.T, out string) int {
	m := processedRE.FindStringSubmatch(out)
	require.NotNil(t, m, "no transaction count in pgbench's output:\n%s", out)
	n, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	return n
}

func run(t *testing.T, name string, args ...string) {
	b, err := exec.Command(name, args...).CombinedOutput()
	require.NoError(t, err, "%s %v:\n%s", name, args, b)
}

// agentConn reads the agent's messages; the test only listens.
type agentConn struct{ msgs chan *agentproto.Message }

// dialAgent connects to the agent's port once QEMU has created its socket.
func dialAgent(t *testing.T, path string, exited <-chan struct{}) *agentConn {
	var conn net.Conn
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var err error
		if conn, err = net.Dial("unix", path); err == nil {
			break
		}
		select {
		case <-tick.C:
		case <-exited:
			t.Fatal("QEMU exited before its agent socket appeared")
		}
	}
	t.Cleanup(func() { _ = conn.Close() })
	a := &agentConn{msgs: make(chan *agentproto.Message, 1024)}
	go func() {
		defer close(a.msgs)
		r := agentproto.NewReader(conn)
		for {
			m, err := r.Read()
			var bad *agentproto.MalformedError
			switch {
			case errors.As(err, &bad):
				t.Errorf("the agent sent a malformed line: %v", err)
			case err != nil:
				return
			default:
				a.msgs <- m
			}
		}
	}()
	return a
}

// await returns the first message that satisfies ok, discarding others.
func (a *agentConn) await(t *testing.T, within time.Duration, what string, ok func(*agentproto.Message) bool) *agentproto.Message {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case m, open := <-a.msgs:
			require.True(t, open, "the agent connection closed while waiting for %s", what)
			if ok(m) {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s from the agent within %v", what, within)
		}
	}
}
