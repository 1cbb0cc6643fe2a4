package guest_test

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentproto"
)

const (
	mib = 1 << 20
	// floor is the guest's memory floor, passed on the kernel command line.
	floor = 256 * mib
)

// cmdline is the kernel command line README.md documents for the plugin.
var cmdline = fmt.Sprintf("console=ttyS0 memhp_default_state=online_movable quiet panic=1 vertigo.memory_floor=%d", floor)

// TestGuestBoots boots the image under TCG and drives the agent the way the
// QEMU plugin will: hello, metrics, vCPU and virtio-mem hotplug, set_cpus,
// downscale consent, load and memory pressure, a reconnect, bad requests.
func TestGuestBoots(t *testing.T) {
	v := bootVM(t)
	a := v.agent

	hello := a.await(t, 60*time.Second, "hello", func(m *agentproto.Message) bool { return m.Type == agentproto.TypeHello })
	t.Logf("QEMU start to hello: %v (guest uptime at hello %v, kernel %s)",
		time.Since(v.started).Round(time.Millisecond), time.Duration(hello.BootNanos).Round(time.Millisecond), hello.KernelLabel)
	require.Equal(t, agentproto.Version, hello.Version)
	require.Equal(t, 1, hello.OnlineCPUs, "booted with cpus=1")
	require.Greater(t, hello.MemoryTotalBytes, uint64(300*mib), "512M of base RAM, less what the kernel keeps")

	m := a.await(t, 5*time.Second, "metrics", isMetrics)
	require.Equal(t, 1, m.OnlineCPUs)
	require.Greater(t, m.UptimeNanos, hello.BootNanos)
	require.Greater(t, m.MemoryUsedBytes, uint64(0))
	require.InDelta(t, time.Now().UnixNano(), m.TUnixNano, float64(time.Minute), "guest wall time")

	// A hotplugged vCPU is onlined by the agent on its uevent.
	v.hotplugCPU(t)
	plugged := time.Now()
	ev := a.await(t, 20*time.Second, "cpu_online", isEvent(agentproto.EventCPUOnline))
	t.Logf("vCPU device_add to online: %v", time.Since(plugged).Round(time.Millisecond))
	require.Equal(t, 2, ev.OnlineCPUs)

	// virtio-mem grows; the kernel onlines the blocks, the agent reports.
	before := a.await(t, 5*time.Second, "metrics", isMetrics).MemoryTotalBytes
	v.qmp.run(t, "qom-set", map[string]any{"path": "vm0", "property": "requested-size", "value": 256 * mib})
	resized := time.Now()
	ev = a.await(t, 20*time.Second, "memory_online of 256MiB", func(m *agentproto.Message) bool {
		return isEvent(agentproto.EventMemoryOnline)(m) && m.MemoryTotalBytes >= before+256*mib
	})
	t.Logf("virtio-mem requested-size 256MiB to online: %v (MemTotal %d -> %d MiB)",
		time.Since(resized).Round(time.Millisecond), before/mib, ev.MemoryTotalBytes/mib)

	// Shrinking vCPUs is offlining, not unplugging.
	reply := a.request(t, &agentproto.Message{Op: agentproto.OpSetCPUs, CPUs: 1})
	require.True(t, reply.OK, reply.Error)
	require.Equal(t, 1, reply.OnlineCPUs)
	a.await(t, 5*time.Second, "metrics with 1 CPU", func(m *agentproto.Message) bool { return isMetrics(m) && m.OnlineCPUs == 1 })

	// Downscale consent: the floor from the kernel command line bounds the
	// target (used memory plus headroom would allow this one).
	require.Less(t, m.MemoryUsedBytes+100*mib, uint64(floor-mib))
	reply = a.request(t, &agentproto.Message{Op: agentproto.OpDownscale, CPUs: 1, MemoryBytes: floor - mib})
	require.False(t, reply.OK)
	require.Contains(t, reply.Error, "vertigo.memory_floor")
	reply = a.request(t, &agentproto.Message{Op: agentproto.OpDownscale, CPUs: 1, MemoryBytes: 512 * mib})
	require.True(t, reply.OK, reply.Error)

	// CPU load raises load1 (the kernel updates it every 5 s).
	base := a.await(t, 5*time.Second, "metrics", isMetrics).Load1
	reply = a.request(t, &agentproto.Message{Op: agentproto.OpLoad, CPUWorkers: 4, DurationNs: int64(30 * time.Second)})
	require.True(t, reply.OK, reply.Error)
	m = a.await(t, 20*time.Second, "load1 rising", func(m *agentproto.Message) bool { return isMetrics(m) && m.Load1 >= base+0.2 })
	t.Logf("load1 %.2f -> %.2f under 4 workers", base, m.Load1)

	// A load with memory past 0.85 x (total - 100MiB) raises pressure; it
	// replaces the CPU load.
	m = a.await(t, 5*time.Second, "metrics", isMetrics)
	line := uint64(0.85 * float64(m.MemoryTotalBytes-100*mib))
	require.Less(t, m.MemoryUsedBytes, line, "the guest is under pressure before the load")
	alloc := line - m.MemoryUsedBytes + 64*mib
	require.Less(t, m.MemoryUsedBytes+alloc, m.MemoryTotalBytes-64*mib, "the load must not run the guest out of memory")
	reply = a.request(t, &agentproto.Message{Op: agentproto.OpLoad, MemoryBytes: alloc, DurationNs: int64(30 * time.Second)})
	require.True(t, reply.OK, reply.Error)
	ev = a.await(t, 20*time.Second, "memory_pressure", isEvent(agentproto.EventMemoryPressure))
	require.Greater(t, float64(ev.MemoryUsedBytes), 0.85*float64(ev.MemoryTotalBytes-100*mib))
	reply = a.request(t, &agentproto.Message{Op: agentproto.OpLoad})
	require.True(t, reply.OK, reply.Error)
	a.await(t, 5*time.Second, "memory released", func(m *agentproto.Message) bool {
		return isMetrics(m) && m.MemoryUsedBytes+alloc/2 < ev.MemoryUsedBytes
	})

	// Bad requests are answered, not fatal.
	reply = a.request(t, &agentproto.Message{Op: agentproto.OpSetCPUs, CPUs: 9})
	require.False(t, reply.OK)
	require.Contains(t, reply.Error, "set_cpus.cpus_target")
	a.writeLine(t, "not json\n")
	ev = a.await(t, 5*time.Second, "protocol_error", isEvent(agentproto.EventProtocolError))
	require.Contains(t, ev.Error, "invalid character")
	a.writeLine(t, `{"type":"request","id":77,"op":"reboot"}`+"\n")
	reply = a.await(t, 5*time.Second, "reply to id 77", func(m *agentproto.Message) bool { return m.Type == agentproto.TypeReply && m.ID == 77 })
	require.Contains(t, reply.Error, "request.op")

	// A new host connection (a restarted plugin) asks for a hello, since a
	// quick reconnect can go unnoticed in the guest.
	a.close()
	a = dialAgent(t, v.dir)
	id := a.send(t, &agentproto.Message{Op: agentproto.OpHello})
	hello = a.await(t, 10*time.Second, "hello after reconnecting", func(m *agentproto.Message) bool { return m.Type == agentproto.TypeHello })
	require.Equal(t, 1, hello.OnlineCPUs)
	a.await(t, 5*time.Second, "reply to hello", func(m *agentproto.Message) bool { return m.Type == agentproto.TypeReply && m.ID == id })
}

func isMetrics(m *agentproto.Message) bool { return m.Type == agentproto.TypeMetrics }

func isEvent(name string) func(*agentproto.Message) bool {
	return func(m *agentproto.Message) bool { return m.Type == agentproto.TypeEvent && m.Event == name }
}

// vm is a QEMU process running the guest image.
type vm struct {
	dir     string
	started time.Time
	qmp     *qmpConn
	agent   *agentConn
}

// buildImage runs build.sh, which rebuilds only what changed, so the test
// never boots an agent older than the code under test.
func buildImage(t *testing.T) (kernel, initrd string) {
	repo, err := filepath.Abs("../../..")
	require.NoError(t, err)
	out := filepath.Join(repo, "build/guest")
	cmd := exec.Command("./plugins/hypervisor-qemu/guest/build.sh", out)
	cmd.Dir = repo
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "building the guest image failed; run `plugins/hypervisor-qemu/guest/build.sh build/guest` (or `make guest`) from the repository root:\n%s", b)
	return filepath.Join(out, "vmlinux"), filepath.Join(out, "initramfs.cpio.gz")
}

// bootVM starts QEMU the way the plugin does (TCG: /dev/kvm on this kind of
// machine cannot run a Linux guest) and connects QMP and the agent port.
func bootVM(t *testing.T) *vm {
	qemu, err := exec.LookPath("qemu-system-x86_64")
	require.NoError(t, err, "QEMU is missing: apt-get install -y --no-install-recommends qemu-system-x86 qemu-utils busybox-static, then run `plugins/hypervisor-qemu/guest/build.sh build/guest` (or `make guest`)")
	kernel, initrd := buildImage(t)
	dir := t.TempDir()
	cmd := exec.Command(qemu,
		"-accel", "tcg", "-machine", "q35", "-nodefaults", "-no-reboot", "-nographic",
		"-smp", "cpus=1,maxcpus=4", "-m", "512M,slots=2,maxmem=4G",
		"-kernel", kernel, "-initrd", initrd, "-append", cmdline,
		"-serial", "file:"+filepath.Join(dir, "console.log"),
		"-qmp", "unix:"+filepath.Join(dir, "qmp.sock")+",server=on,wait=off",
		"-device", "pcie-root-port,id=rp1,chassis=1,slot=1",
		"-object", "memory-backend-ram,id=vmem0,size=1G",
		"-device", "virtio-mem-pci,id=vm0,memdev=vmem0,requested-size=0,bus=rp1",
		"-device", "virtio-serial-pci",
		"-chardev", "socket,id=agent0,path="+filepath.Join(dir, "agent.sock")+",server=on,wait=off",
		"-device", "virtserialport,chardev=agent0,name="+agentproto.PortName,
	)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	require.NoError(t, cmd.Start())
	v := &vm{dir: dir, started: time.Now()}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			console, _ := os.ReadFile(filepath.Join(dir, "console.log"))
			t.Logf("QEMU output:\n%s\nguest console:\n%s", stderr.String(), console)
		}
	})

	v.qmp = connectQMP(t, filepath.Join(dir, "qmp.sock"), exited, &stderr)
	v.agent = dialAgent(t, dir)
	return v
}

// qmpConn is a minimal QMP client: one command at a time, events skipped.
// (go-qemu's qmp package imports go-libvirt, which go.sum does not carry.)
type qmpConn struct {
	conn net.Conn
	r    *bufio.Reader
}

// connectQMP waits for QEMU to listen on its QMP socket (45-170 ms after
// start on this kind of machine) and completes the handshake.
func connectQMP(t *testing.T, path string, exited <-chan struct{}, stderr *bytes.Buffer) *qmpConn {
	deadline := time.After(10 * time.Second)
	retry := time.NewTicker(20 * time.Millisecond)
	defer retry.Stop()
	for {
		conn, err := net.Dial("unix", path)
		if err == nil {
			q := &qmpConn{conn: conn, r: bufio.NewReader(conn)}
			t.Cleanup(func() { _ = conn.Close() })
			_, err = q.r.ReadBytes('\n') // greeting
			require.NoError(t, err)
			q.run(t, "qmp_capabilities", nil)
			return q
		}
		select {
		case <-exited:
			t.Fatalf("QEMU exited before its QMP socket was ready: %s", stderr.String())
		case <-deadline:
			t.Fatalf("QMP socket %s not ready after 10s: %v", path, err)
		case <-retry.C:
		}
	}
}

// run executes a command and returns its "return" value.
func (q *qmpConn) run(t *testing.T, command string, args map[string]any) json.RawMessage {
	t.Helper()
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	require.NoError(t, json.NewEncoder(q.conn).Encode(req))
	for {
		line, err := q.r.ReadBytes('\n')
		require.NoError(t, err, "QMP %s", command)
		var resp struct {
			Event  string          `json:"event"`
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Class, Desc string
			} `json:"error"`
		}
		require.NoError(t, json.Unmarshal(line, &resp), "QMP line %s", line)
		switch {
		case resp.Event != "":
			continue
		case resp.Error != nil:
			t.Fatalf("QMP %s: %s: %s", command, resp.Error.Class, resp.Error.Desc)
		}
		return resp.Return
	}
}

// cpuSlot is one entry of query-hotpluggable-cpus.
type cpuSlot struct {
	Type    string         `json:"type"`
	Props   map[string]int `json:"props"`
	QOMPath string         `json:"qom-path"` // set when a vCPU occupies it
}

// hotplugCPU adds a vCPU in the lowest free slot. QEMU lists slots highest
// first; a vCPU whose APIC ID is not the next Linux CPU number gets its IPIs
// late under TCG (12 s to online, soft lockups under load: measured).
func (v *vm) hotplugCPU(t *testing.T) {
	var slots []cpuSlot
	require.NoError(t, json.Unmarshal(v.qmp.run(t, "query-hotpluggable-cpus", nil), &slots))
	slots = slices.DeleteFunc(slots, func(s cpuSlot) bool { return s.QOMPath != "" })
	require.NotEmpty(t, slots, "no free vCPU slot")
	free := slices.MinFunc(slots, func(a, b cpuSlot) int {
		return cmp.Or(cmp.Compare(a.Props["socket-id"], b.Props["socket-id"]),
			cmp.Compare(a.Props["core-id"], b.Props["core-id"]),
			cmp.Compare(a.Props["thread-id"], b.Props["thread-id"]))
	})
	args := map[string]any{"driver": free.Type, "id": "vcpu-hotplugged"}
	for k, p := range free.Props {
		args[k] = p
	}
	v.qmp.run(t, "device_add", args)
}

// agentConn is the host end of the agent's port, as the plugin holds it.
type agentConn struct {
	conn   net.Conn
	w      *agentproto.Writer
	msgs   chan *agentproto.Message
	nextID uint64
}

func dialAgent(t *testing.T, dir string) *agentConn {
	conn, err := net.Dial("unix", filepath.Join(dir, "agent.sock"))
	require.NoError(t, err)
	a := &agentConn{conn: conn, w: agentproto.NewWriter(conn), msgs: make(chan *agentproto.Message, 256)}
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
	t.Cleanup(a.close)
	return a
}

func (a *agentConn) close() { _ = a.conn.Close() }

// await returns the first message that satisfies ok, discarding the others,
// or fails the test after within.
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

// send sends req with a fresh id and returns the id.
func (a *agentConn) send(t *testing.T, req *agentproto.Message) uint64 {
	a.nextID++
	req.Type, req.ID = agentproto.TypeRequest, a.nextID
	require.NoError(t, a.w.Write(req))
	return req.ID
}

// request sends req and waits for its reply.
func (a *agentConn) request(t *testing.T, req *agentproto.Message) *agentproto.Message {
	t.Helper()
	id := a.send(t, req)
	return a.await(t, 10*time.Second, fmt.Sprintf("reply to %s #%d", req.Op, id), func(m *agentproto.Message) bool {
		return m.Type == agentproto.TypeReply && m.ID == id
	})
}

func (a *agentConn) writeLine(t *testing.T, line string) {
	_, err := io.WriteString(a.conn, line)
	require.NoError(t, err)
}
