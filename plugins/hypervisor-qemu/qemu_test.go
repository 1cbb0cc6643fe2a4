package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentconn"
	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/fleet"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// TestVMLifecycle drives one real VM (QEMU under TCG, the guest image, its
// agent) through everything the plugin does, in order, timing each step: a
// boot is seconds under TCG, so one VM serves every step.
func TestVMLifecycle(t *testing.T) {
	run := runDir(t)
	config := configJSON(t, run)
	memory := &memoryCheck{dir: t.TempDir()}
	p, c := inProcess(t, config, func(p *plugin) { p.beforeResume = memory.hook })
	const name = "life"
	spec := testSpec(name)
	r := follow(t, c, name)
	var first *pb.VMStatus

	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	step("start", func(t *testing.T) {
		started := time.Now()
		resp, err := c.Hypervisor.StartVM(within(t, 2*time.Minute), &pb.StartVMRequest{Spec: spec})
		require.NoError(t, err)
		t.Logf("StartVM to agent hello: %v", time.Since(started).Round(time.Millisecond))
		first = resp.GetStatus()
		require.Equal(t, pb.VMState_VM_STATE_RUNNING, first.GetState())
		require.Equal(t, "node-a", first.GetNode())
		h := handleOf(t, first)
		require.True(t, alive(h.PID))
		require.Equal(t, filepath.Join(run, "life@node-a"), h.Dir)
		for _, f := range []string{"spec.json", "devices.json", "handle.json", "pid", "qmp.sock", "agent.sock", "serial.log"} {
			require.FileExists(t, filepath.Join(h.Dir, f))
		}
		info, err := os.Stat(filepath.Join(h.Dir, "spec.json"))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

		again, err := c.Hypervisor.StartVM(within(t, time.Minute), &pb.StartVMRequest{Spec: spec})
		require.NoError(t, err)
		require.Equal(t, first.GetHandle(), again.GetStatus().GetHandle(), "a second StartVM returns the running VM")
		listed, err := c.Hypervisor.ListVMs(within(t, 5*time.Second), &pb.ListVMsRequest{})
		require.NoError(t, err)
		require.Len(t, listed.GetVms(), 1)
	})

	step("reports", func(t *testing.T) {
		s := r.waitSample(t, 10*time.Second, "one vCPU online", func(s sample) bool { return s.onlineMilli == 1000 })
		require.Positive(t, s.uptime)
		require.Positive(t, s.online)
		require.Positive(t, s.used)
	})

	var grown sample
	step("resize_up_cpus_and_memory_at_once", func(t *testing.T) {
		before := r.waitSample(t, 10*time.Second, "a sample", func(sample) bool { return true })
		started := time.Now()
		resp, err := c.Hypervisor.Resize(within(t, time.Minute), &pb.ResizeRequest{Name: name, Target: &pb.Size{VcpuMilli: 3000, MemoryBytes: 1024 * mib}})
		require.NoError(t, err)
		t.Logf("Resize 1->3 vCPUs and +512MiB: %d ms", time.Since(started).Milliseconds())
		require.False(t, resp.GetRefused())
		require.Equal(t, int64(3000), resp.GetActual().GetVcpuMilli())
		require.Equal(t, uint64(1024*mib), resp.GetActual().GetMemoryBytes())
		grown = r.waitSample(t, 10*time.Second, "3 vCPUs and 512MiB more online", func(s sample) bool {
			return s.onlineMilli == 3000 && s.online >= before.online+512*mib
		})
		var dev struct {
			CPUs []struct{ ID string } `json:"cpus"`
		}
		b, err := os.ReadFile(filepath.Join(handleOf(t, first).Dir, "devices.json"))
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &dev))
		require.Len(t, dev.CPUs, 2, "the hotplugged vCPUs are recorded for migrations")
	})

	step("resize_down_with_consent", func(t *testing.T) {
		started := time.Now()
		resp, err := c.Hypervisor.Resize(within(t, time.Minute), &pb.ResizeRequest{Name: name, Target: &pb.Size{VcpuMilli: 1500, MemoryBytes: 768 * mib}})
		require.NoError(t, err)
		t.Logf("Resize down to 1.5 vCPUs and -256MiB: %d ms", time.Since(started).Milliseconds())
		require.False(t, resp.GetRefused(), resp.GetRefusalReason())
		require.Equal(t, uint64(768*mib), resp.GetActual().GetMemoryBytes())
		want := int64(2000)
		if p.cpu != nil {
			want = 1500 // the quota trims the second vCPU to a half
		}
		require.Equal(t, want, resp.GetActual().GetVcpuMilli())
		r.waitSample(t, 10*time.Second, "2 vCPUs and 256MiB less online", func(s sample) bool {
			return s.onlineMilli == 2000 && s.online <= grown.online-256*mib
		})
	})

	step("refused_downscale_changes_nothing", func(t *testing.T) {
		_, err := c.Hypervisor.GenerateLoad(within(t, 10*time.Second), &pb.GenerateLoadRequest{Name: name, MemoryBytes: 400 * mib, DurationNanos: int64(time.Minute)})
		require.NoError(t, err)
		r.waitSample(t, 30*time.Second, "the load's memory in use", func(s sample) bool { return s.used >= 400*mib })
		resp, err := c.Hypervisor.Resize(within(t, time.Minute), &pb.ResizeRequest{Name: name, Target: &pb.Size{VcpuMilli: 1000, MemoryBytes: 512 * mib}})
		require.NoError(t, err)
		require.True(t, resp.GetRefused())
		require.Contains(t, resp.GetRefusalReason(), "in use")
		require.Equal(t, uint64(768*mib), resp.GetActual().GetMemoryBytes(), "nothing changed")
		r.waitEvent(t, 10*time.Second, pb.GuestEventType_GUEST_EVENT_TYPE_DOWNSCALE_REFUSED)
		r.waitSample(t, 10*time.Second, "still 2 vCPUs", func(s sample) bool { return s.onlineMilli == 2000 })
		_, err = c.Hypervisor.GenerateLoad(within(t, 10*time.Second), &pb.GenerateLoadRequest{Name: name})
		require.NoError(t, err, "an empty load stops the load")
	})

	step("migrate_after_hotplug", func(t *testing.T) {
		err := migrateError(t, c, &pb.MigrateRequest{Name: name, TargetNode: "node-b", TargetTap: "tap0"})
		require.Equal(t, codes.InvalidArgument, status.Code(err))
		require.ErrorContains(t, err, `target_tap: life has no NIC, so no port on the target (target_tap "tap0"`)

		before := r.waitSample(t, 10*time.Second, "a sample", func(sample) bool { return true })
		// The guest writes memory while it moves, and a bandwidth below
		// what the copy needs makes QEMU go over the memory more than once:
		// what a live migration under TCG got wrong (see pausesForCopy).
		_, err = c.Hypervisor.GenerateLoad(within(t, 10*time.Second), &pb.GenerateLoadRequest{Name: name, CpuWorkers: 2, MemoryBytes: 64 * mib, DurationNanos: int64(time.Minute)})
		require.NoError(t, err)
		started := time.Now()
		stream, err := c.Hypervisor.Migrate(within(t, time.Minute), &pb.MigrateRequest{Name: name, TargetNode: "node-b", MaxBandwidthBytesPerSecond: 128 * mib, DowntimeLimitNanos: int64(10 * time.Millisecond)})
		require.NoError(t, err)
		var last *pb.MigrationProgress
		var transferred uint64
		for {
			pr, err := stream.Recv()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			require.GreaterOrEqual(t, pr.GetTransferredBytes(), transferred, "progress only moves forward")
			transferred, last = pr.GetTransferredBytes(), pr
		}
		require.Equal(t, pb.MigrationPhase_MIGRATION_PHASE_COMPLETED, last.GetPhase(), last.GetMessage())
		t.Logf("migration: %d ms in all (%d ms by the plugin's clock), downtime %d ms, %d MiB sent",
			time.Since(started).Milliseconds(), time.Duration(last.GetElapsedNanos()).Milliseconds(), time.Duration(last.GetDowntimeNanos()).Milliseconds(), last.GetTransferredBytes()/mib)
		require.Positive(t, last.GetDowntimeNanos(), "the guest pauses, at least at the switch-over")
		require.Less(t, last.GetDowntimeNanos(), last.GetElapsedNanos(), "the pause is part of the migration")
		same, ok := memory.last()
		require.True(t, ok, "the destination's memory was compared before it ran")
		require.NoError(t, same.err)
		require.Greater(t, same.pages, 512*mib/4096, "all of the guest's RAM was compared")
		require.Zero(t, same.differing, "pages of %d differ between source and destination at the switchover", same.pages)
		t.Logf("the destination held the source's memory exactly: %d pages compared", same.pages)
		_, err = c.Hypervisor.GenerateLoad(within(t, 10*time.Second), &pb.GenerateLoadRequest{Name: name})
		require.NoError(t, err)

		listed, err := c.Hypervisor.ListVMs(within(t, 5*time.Second), &pb.ListVMsRequest{})
		require.NoError(t, err)
		require.Len(t, listed.GetVms(), 1)
		moved := listed.GetVms()[0]
		require.Equal(t, "node-b", moved.GetNode())
		require.Equal(t, pb.VMState_VM_STATE_RUNNING, moved.GetState())
		require.False(t, alive(handleOf(t, first).PID), "the source QEMU is gone")
		require.NoFileExists(t, filepath.Join(run, "life@node-a", "spec.json"))
		require.FileExists(t, filepath.Join(run, "life@node-a", "serial.log"), "kept for forensics")
		first = moved

		after := r.waitSample(t, 10*time.Second, "a sample from the destination", func(s sample) bool { return s.uptime > before.uptime })
		require.Equal(t, int64(2000), after.onlineMilli, "the hotplugged vCPUs came along")
		t.Logf("guest uptime %v before, %v after: the guest kept running", before.uptime.Round(time.Millisecond), after.uptime.Round(time.Millisecond))

		// The destination resizes like the source did.
		resp, err := c.Hypervisor.Resize(within(t, time.Minute), &pb.ResizeRequest{Name: name, Target: &pb.Size{VcpuMilli: 4000, MemoryBytes: 1024 * mib}})
		require.NoError(t, err)
		require.Equal(t, int64(4000), resp.GetActual().GetVcpuMilli())
	})

	step("cancelled_migration_keeps_the_source", func(t *testing.T) {
		before := r.waitSample(t, 10*time.Second, "a sample", func(sample) bool { return true })
		// A trickle of bandwidth keeps the migration going until cancelled.
		stream, err := c.Hypervisor.Migrate(within(t, time.Minute), &pb.MigrateRequest{Name: name, TargetNode: "node-a", MaxBandwidthBytesPerSecond: 1 * mib})
		require.NoError(t, err)
		var last *pb.MigrationProgress
		for {
			pr, err := stream.Recv()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			if pr.GetPhase() == pb.MigrationPhase_MIGRATION_PHASE_TRANSFERRING && last.GetPhase() != pb.MigrationPhase_MIGRATION_PHASE_TRANSFERRING {
				_, err := c.Hypervisor.CancelMigration(within(t, 5*time.Second), &pb.CancelMigrationRequest{Name: name})
				require.NoError(t, err)
			}
			last = pr
		}
		require.Equal(t, pb.MigrationPhase_MIGRATION_PHASE_CANCELLED, last.GetPhase(), last.GetMessage())
		require.Equal(t, "migration cancelled", last.GetMessage())
		listed, err := c.Hypervisor.ListVMs(within(t, 5*time.Second), &pb.ListVMsRequest{})
		require.NoError(t, err)
		st := listed.GetVms()[0]
		require.Equal(t, "node-b", st.GetNode())
		require.Equal(t, pb.VMState_VM_STATE_RUNNING, st.GetState())
		require.Contains(t, st.GetMessage(), "migration to node-a failed")
		require.Equal(t, first.GetHandle(), st.GetHandle(), "the same QEMU runs the VM")
		require.NoFileExists(t, filepath.Join(run, "life@node-a", "spec.json"), "the destination is gone")
		r.waitSample(t, 10*time.Second, "the guest running on", func(s sample) bool { return s.uptime > before.uptime })
	})

	step("plugin_killed_mid_migration_then_recovered", func(t *testing.T) {
		// The in-process plugin dies first: its connections go, the VM
		// runs on, and plugin processes take over from here.
		p.detach()
		pid := handleOf(t, first).PID
		require.True(t, alive(pid))
		bin := buildPlugin(t)
		launch := func() *sdk.Launched {
			l, err := sdk.Launch(sdk.LaunchOptions{Path: bin, Dir: t.TempDir()})
			require.NoError(t, err)
			t.Cleanup(l.Kill)
			ctx := within(t, time.Minute)
			_, version, err := l.Identify(ctx, pluginName, pb.Kind_KIND_HYPERVISOR)
			require.NoError(t, err)
			started := time.Now()
			require.NoError(t, l.Configure(ctx, config, version))
			t.Logf("a new plugin process re-attached in %d ms", time.Since(started).Milliseconds())
			return l
		}
		doomed := launch()
		stream, err := doomed.Hypervisor.Migrate(within(t, time.Minute), &pb.MigrateRequest{Name: name, TargetNode: "node-a", MaxBandwidthBytesPerSecond: 1 * mib})
		require.NoError(t, err)
		for {
			pr, err := stream.Recv()
			require.NoError(t, err)
			if pr.GetPhase() == pb.MigrationPhase_MIGRATION_PHASE_TRANSFERRING {
				break
			}
		}
		var dst struct{ PID int }
		b, err := os.ReadFile(filepath.Join(run, "life@node-a", "handle.json"))
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &dst))
		require.True(t, alive(dst.PID), "the destination runs")
		require.NoError(t, syscall.Kill(doomed.Process.ReattachConfig().Pid, syscall.SIGKILL))
		// Progress already in flight may still arrive; then the stream
		// breaks with the plugin, long before its deadline.
		for err == nil {
			_, err = stream.Recv()
		}
		require.NotEqual(t, codes.DeadlineExceeded, status.Code(err), "the stream breaks with the plugin: %v", err)

		l := launch()
		ctx := within(t, time.Minute)
		listed, err := l.Hypervisor.ListVMs(ctx, &pb.ListVMsRequest{})
		require.NoError(t, err)
		require.Len(t, listed.GetVms(), 1)
		found := listed.GetVms()[0]
		require.Equal(t, pb.VMState_VM_STATE_RUNNING, found.GetState(), found.GetMessage())
		require.Equal(t, "node-b", found.GetNode(), "the unfinished migration is undone")
		require.Equal(t, pid, handleOf(t, found).PID, "the same QEMU, found again")
		require.False(t, alive(dst.PID), "the half-filled destination is gone")
		require.NoFileExists(t, filepath.Join(run, "life@node-a", "spec.json"))

		recovered, err := l.Hypervisor.RecoverVM(ctx, &pb.RecoverVMRequest{Spec: spec, Handle: first.GetHandle()})
		require.NoError(t, err)
		require.Equal(t, pb.VMState_VM_STATE_RUNNING, recovered.GetStatus().GetState())
		require.Equal(t, pid, handleOf(t, recovered.GetStatus()).PID)

		again := follow(t, l.Client, name)
		before := again.waitSample(t, 10*time.Second, "reports through the new process", func(s sample) bool { return s.onlineMilli == 4000 })
		require.Greater(t, before.uptime, 10*time.Second, "the guest never restarted")
		resp, err := l.Hypervisor.Resize(ctx, &pb.ResizeRequest{Name: name, Target: &pb.Size{VcpuMilli: 2000, MemoryBytes: 1024 * mib}, Force: true})
		require.NoError(t, err)
		require.Equal(t, int64(2000), resp.GetActual().GetVcpuMilli())

		started := time.Now()
		_, err = l.Hypervisor.StopVM(ctx, &pb.StopVMRequest{Name: name, GraceNanos: int64(10 * time.Second)})
		require.NoError(t, err)
		t.Logf("StopVM: %d ms", time.Since(started).Milliseconds())
		require.False(t, alive(pid))
		listed, err = l.Hypervisor.ListVMs(ctx, &pb.ListVMsRequest{})
		require.NoError(t, err)
		require.Empty(t, listed.GetVms())
		dir := filepath.Join(run, "life@node-b")
		require.NoFileExists(t, filepath.Join(dir, "spec.json"))
		serial, err := os.ReadFile(filepath.Join(dir, "serial.log"))
		require.NoError(t, err)
		require.Contains(t, string(serial), "reboot: Power down", "the guest powered itself off: a graceful stop, not a kill")
		_, err = l.Hypervisor.StopVM(ctx, &pb.StopVMRequest{Name: name})
		require.NoError(t, err, "stopping twice is fine")
	})
}

// TestAKilledQEMUFailsTheVM: a VM whose QEMU dies is reported failed with
// the reason, refuses operations, and starts afresh on the next StartVM.
func TestAKilledQEMUFailsTheVM(t *testing.T) {
	_, c := inProcess(t, configJSON(t, runDir(t)))
	spec := testSpec("crash")
	resp, err := c.Hypervisor.StartVM(within(t, 2*time.Minute), &pb.StartVMRequest{Spec: spec})
	require.NoError(t, err)
	pid := handleOf(t, resp.GetStatus()).PID
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))

	var st *pb.VMStatus
	require.Eventually(t, func() bool {
		listed, err := c.Hypervisor.ListVMs(context.Background(), &pb.ListVMsRequest{})
		require.NoError(t, err)
		st = listed.GetVms()[0]
		return st.GetState() == pb.VMState_VM_STATE_FAILED
	}, 10*time.Second, 20*time.Millisecond)
	require.Contains(t, st.GetMessage(), "exited unexpectedly")
	require.Contains(t, st.GetMessage(), "serial.log ends:")
	_, err = c.Hypervisor.Resize(within(t, 10*time.Second), &pb.ResizeRequest{Name: "crash", Target: spec.GetSize()})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))

	again, err := c.Hypervisor.StartVM(within(t, 2*time.Minute), &pb.StartVMRequest{Spec: spec})
	require.NoError(t, err)
	require.Equal(t, pb.VMState_VM_STATE_RUNNING, again.GetStatus().GetState())
	require.NotEqual(t, pid, handleOf(t, again.GetStatus()).PID)
	_, err = c.Hypervisor.StopVM(within(t, time.Minute), &pb.StopVMRequest{Name: "crash"})
	require.NoError(t, err)
}

// TestASilentAgentIsConnectedAgain: when the agent's channel falls silent
// (here QEMU is stopped longer than agentconn.Silence), the plugin drops
// its socket and connects anew, and once QEMU runs again the guest's
// reports come through the new connection.
func TestASilentAgentIsConnectedAgain(t *testing.T) {
	reconnected := make(chan struct{}, 1)
	log := hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: pluginName, Output: io.Discard})
	log.RegisterSink(hclog.NewSinkAdapter(&hclog.LoggerOptions{Level: hclog.Warn, Output: sinkFunc(func(line []byte) {
		if strings.Contains(string(line), "silent; connecting again") {
			select {
			case reconnected <- struct{}{}:
			default:
			}
		}
	})}))
	_, c := inProcess(t, configJSON(t, runDir(t)), func(p *plugin) { p.log, p.hub = log, fleet.NewHub(log) })
	r := follow(t, c, "quiet")
	resp, err := c.Hypervisor.StartVM(within(t, 2*time.Minute), &pb.StartVMRequest{Spec: testSpec("quiet")})
	require.NoError(t, err)
	before := r.waitSample(t, 30*time.Second, "a sample", func(sample) bool { return true })

	pid := handleOf(t, resp.GetStatus()).PID
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	stopped := true
	t.Cleanup(func() {
		if stopped {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	})
	select {
	case <-reconnected:
	case <-time.After(agentconn.Silence + 30*time.Second):
		t.Fatalf("no new connection within %v of the agent's silence", agentconn.Silence+30*time.Second)
	}
	require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
	stopped = false
	after := r.waitSample(t, 30*time.Second, "a sample from after the stop", func(s sample) bool { return s.uptime > before.uptime })
	t.Logf("reports resumed on the new connection: guest uptime %v -> %v", before.uptime, after.uptime)
	_, err = c.Hypervisor.StopVM(within(t, time.Minute), &pb.StopVMRequest{Name: "quiet"})
	require.NoError(t, err)
}

// sinkFunc is an io.Writer that hands each log line to a function.
type sinkFunc func([]byte)

func (f sinkFunc) Write(b []byte) (int, error) { f(b); return len(b), nil }

func TestRequestsAreCheckedBeforeAnythingRuns(t *testing.T) {
	run := runDir(t)
	_, c := inProcess(t, configJSON(t, run))
	ctx := within(t, 10*time.Second)
	code := func(err error) codes.Code { return status.Code(err) }

	bad := testSpec("x")
	bad.Node = "node-z"
	_, err := c.Hypervisor.StartVM(ctx, &pb.StartVMRequest{Spec: bad})
	require.Equal(t, codes.InvalidArgument, code(err))
	require.ErrorContains(t, err, `spec.node: unknown node "node-z"`)

	bad = testSpec("x")
	bad.Size.VcpuMilli = 8000
	_, err = c.Hypervisor.StartVM(ctx, &pb.StartVMRequest{Spec: bad})
	require.Equal(t, codes.InvalidArgument, code(err))
	require.ErrorContains(t, err, "spec.size.vcpu_milli: 8000 is outside the bounds 1000..4000")

	_, err = c.Hypervisor.Resize(ctx, &pb.ResizeRequest{Name: "nope", Target: &pb.Size{VcpuMilli: 1000}})
	require.Equal(t, codes.NotFound, code(err))
	stream, err := c.Hypervisor.Migrate(ctx, &pb.MigrateRequest{Name: "nope", TargetNode: "node-b"})
	require.NoError(t, err)
	_, err = stream.Recv()
	require.Equal(t, codes.NotFound, code(err))
	_, err = c.Hypervisor.StopVM(ctx, &pb.StopVMRequest{Name: "nope"})
	require.NoError(t, err, "an unknown VM is stopped already")

	entries, err := os.ReadDir(run)
	require.NoError(t, err)
	require.Empty(t, entries, "nothing was started")
}

func TestMigrationToAnUnknownNodeIsRefused(t *testing.T) {
	_, c := inProcess(t, configJSON(t, runDir(t)))
	stream, err := c.Hypervisor.Migrate(within(t, 10*time.Second), &pb.MigrateRequest{Name: "x", TargetNode: "node-z"})
	require.NoError(t, err)
	_, err = stream.Recv()
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.ErrorContains(t, err, `target_node: unknown node "node-z"`)
}

func TestNotConfigured(t *testing.T) {
	p := newPlugin()
	require.ErrorIs(t, p.Health(context.Background()), errNotConfigured)
	_, err := p.ListVMs(context.Background(), &pb.ListVMsRequest{})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
}
