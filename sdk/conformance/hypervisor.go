package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

const (
	capVCPUHotplug       = "hypervisor.vcpu_hotplug"
	capVCPUOfflineShrink = "hypervisor.vcpu_offline_shrink"
	capMemoryVirtioMem   = "hypervisor.memory_virtio_mem"
	capLiveMigration     = "hypervisor.live_migration"
	capRecover           = "hypervisor.recover"
	capGuestAgent        = "hypervisor.guest_agent"
	capLoadGenerator     = "hypervisor.load_generator"
)

const (
	// vmStepTimeout bounds one hypervisor spec: under TCG a boot takes
	// 3-5 s, a guest report up to guestWait, a migration a few seconds.
	vmStepTimeout = 2 * time.Minute
	// stopGrace is short: the suite's guests hold nothing worth a clean
	// shutdown, and a guest that ignores ACPI would cost the full grace
	// on every spec.
	stopGrace = 2 * time.Second
	// consentTimeout is how long a guest may think about a downscale.
	consentTimeout = 5 * time.Second
	// loadWorkers busy loops for loadFor must lift load1 by loadRise
	// within guestWait. Linux's load1 moves towards the number of runnable
	// tasks by 1-e^(-t/60): one worker would take 40 s to add 0.5, four
	// take about 9 s.
	loadWorkers = 4
	loadFor     = 45 * time.Second
	loadRise    = 0.5
	// memoryLoad keeps a 1 GiB guest's used memory above the 512 MiB a
	// downscale then asks for, with room left for the guest's own.
	memoryLoad = 640 * mib
	// migrationBandwidth and migrationDowntime are what a host would ask
	// for on one machine (QEMU's default bandwidth, 128 MiB/s, is too low
	// for a busy guest ever to converge).
	migrationBandwidth = 1 * gib
	migrationDowntime  = 300 * time.Millisecond
)

// Every VM is started with these bounds, at the small or the big size.
var (
	vmBounds  = &pb.Bounds{Min: size(1000, 512*mib), Max: size(4000, 2*gib), Unit: size(1000, 128*mib)}
	smallSize = size(1000, 512*mib)
	bigSize   = size(3000, 1*gib)
)

// Every hypervisor spec starts its own VMs and the group's after stops
// them, so a spec that fails leaves nothing running and no spec depends on
// another.
var hypervisorGroup = group{
	name:    "hypervisor",
	before:  func(ctx context.Context, s *session) error { return s.configure(ctx) },
	after:   func(ctx context.Context, s *session) error { return s.stopVMs(ctx) },
	timeout: vmStepTimeout,
	specs: []spec{
		{name: "start", check: checkStart},
		{name: "resize_up", requires: needsOneOf(capVCPUHotplug, capMemoryVirtioMem), check: checkResizeUp},
		{name: "resize_down", requires: needsOneOf(capVCPUOfflineShrink, capMemoryVirtioMem), check: checkResizeDown},
		{name: "refused_downscale", requires: needs(capGuestAgent, capLoadGenerator, capMemoryVirtioMem), check: checkRefusedDownscale},
		{name: "migrate", requires: all(needs(capLiveMigration), twoNodes), check: checkMigrate},
		{name: "migrate_unknown_node", requires: needs(capLiveMigration), check: checkMigrateUnknownNode},
		{name: "recover_after_plugin_kill", requires: all(needs(capRecover), canRelaunch), check: checkRecoverAfterPluginKill},
		{name: "recover_after_host_loss", requires: all(needs(capRecover), canRelaunch), check: checkRecoverAfterHostLoss},
		{name: "stop", check: checkStop},
		{name: "load", requires: needs(capLoadGenerator, capGuestAgent), check: checkLoad},
	},
}

func twoNodes(s *session) string {
	if len(s.opts.Nodes) < 2 {
		return "needs two Options.Nodes to migrate between"
	}
	return ""
}

func canRelaunch(s *session) string {
	if s.opts.Relaunch == nil || s.opts.Kill == nil {
		return "needs Options.Relaunch and Options.Kill"
	}
	return ""
}

// grown is the size a resize up asks for: bigger in every dimension the
// plugin can grow.
func (s *session) grown() *pb.Size {
	return pick(s, smallSize, bigSize, capVCPUHotplug, capMemoryVirtioMem)
}

// shrunk is the most a forced resize from big to small may leave: small
// in every dimension the plugin can shrink.
func (s *session) shrunk() *pb.Size {
	return pick(s, bigSize, smallSize, capVCPUOfflineShrink, capMemoryVirtioMem)
}

// pick is from, with each dimension taken from to when the plugin has that
// dimension's capability.
func pick(s *session, from, to *pb.Size, vcpuCap, memoryCap string) *pb.Size {
	out := size(from.GetVcpuMilli(), from.GetMemoryBytes())
	if s.caps[vcpuCap] {
		out.VcpuMilli = to.GetVcpuMilli()
	}
	if s.caps[memoryCap] {
		out.MemoryBytes = to.GetMemoryBytes()
	}
	return out
}

func checkStart(ctx context.Context, s *session) error {
	spec, st, err := s.startVM(ctx, "start", smallSize)
	if err != nil {
		return err
	}
	if _, err := s.listedRunning(ctx, spec.GetName(), spec.GetNode(), st.GetHandle()); err != nil {
		return err
	}
	again, err := s.c.Hypervisor.StartVM(ctx, &pb.StartVMRequest{Spec: spec})
	if err != nil {
		return fmt.Errorf("StartVM again with the same spec: %w", err)
	}
	if h := again.GetStatus().GetHandle(); !bytes.Equal(h, st.GetHandle()) {
		return fmt.Errorf("StartVM again with the same spec: handle %q, the first call's %q: StartVM must return the running VM, not start another", h, st.GetHandle())
	}
	if _, err := s.listedRunning(ctx, spec.GetName(), spec.GetNode(), st.GetHandle()); err != nil {
		return fmt.Errorf("after StartVM twice: %w", err)
	}
	if !s.caps[capGuestAgent] {
		return nil
	}
	first, err := s.waitSample(ctx, spec.GetName(), "at all", func(sample) bool { return true })
	if err != nil {
		return err
	}
	if first.onlineVCPU != spec.GetSize().GetVcpuMilli() {
		return fmt.Errorf("the guest's first sample has online_vcpu_milli %d, want %d", first.onlineVCPU, spec.GetSize().GetVcpuMilli())
	}
	return nil
}

func checkResizeUp(ctx context.Context, s *session) error {
	spec, _, err := s.startVM(ctx, "up", smallSize)
	if err != nil {
		return err
	}
	target := s.grown()
	first, err := s.resizeUp(ctx, spec.GetName(), target)
	if err != nil {
		return err
	}
	again, err := s.resize(ctx, spec.GetName(), target, false)
	if err != nil {
		return fmt.Errorf("again: %w", err)
	}
	if again.GetRefused() || !sameSize(again.GetActual(), first) {
		return fmt.Errorf("Resize to %s again changed the answer from %s to %s (refused %t: %s): Resize must be idempotent",
			formatSize(target), formatSize(first), formatSize(again.GetActual()), again.GetRefused(), again.GetRefusalReason())
	}
	listed, err := s.listed(ctx, spec.GetName())
	if err != nil {
		return err
	}
	if !sameSize(listed.GetSize(), first) {
		return fmt.Errorf("ListVMs says %s has %s, Resize said %s", spec.GetName(), formatSize(listed.GetSize()), formatSize(first))
	}
	return nil
}

// resizeUp grows name to target and, with a guest agent, waits for the
// guest to show it online. It returns the size Resize answered.
func (s *session) resizeUp(ctx context.Context, name string, target *pb.Size) (*pb.Size, error) {
	resp, err := s.resize(ctx, name, target, false)
	if err != nil {
		return nil, err
	}
	actual := resp.GetActual()
	switch {
	case resp.GetRefused():
		return nil, fmt.Errorf("Resize up to %s was refused: %s", formatSize(target), resp.GetRefusalReason())
	case !fits(target, actual):
		return nil, fmt.Errorf("Resize to %s: actual is %s, want at least the target", formatSize(target), formatSize(actual))
	}
	if s.caps[capGuestAgent] {
		_, err := s.waitSample(ctx, name, "with "+formatSize(target)+" online", func(m sample) bool {
			return m.onlineVCPU >= target.GetVcpuMilli() && m.onlineMemory+guestReserved >= target.GetMemoryBytes()
		})
		if err != nil {
			return nil, err
		}
	}
	return actual, nil
}

func checkResizeDown(ctx context.Context, s *session) error {
	spec, _, err := s.startVM(ctx, "down", bigSize)
	if err != nil {
		return err
	}
	name, prev := spec.GetName(), spec.GetSize()
	asked, err := s.resize(ctx, name, smallSize, false)
	if err != nil {
		return err
	}
	switch {
	case asked.GetRefused() && asked.GetRefusalReason() == "":
		return fmt.Errorf("Resize to %s was refused without a reason", formatSize(smallSize))
	case !fits(asked.GetActual(), prev):
		return fmt.Errorf("Resize down from %s to %s: actual is %s, above the previous size", formatSize(prev), formatSize(smallSize), formatSize(asked.GetActual()))
	}
	forced, err := s.resize(ctx, name, smallSize, true)
	if err != nil {
		return fmt.Errorf("forced: %w", err)
	}
	// A dimension the plugin has no capability to shrink may stay put.
	want := s.shrunk()
	switch {
	case forced.GetRefused():
		return fmt.Errorf("a forced Resize to %s was refused: %s", formatSize(smallSize), forced.GetRefusalReason())
	case !fits(forced.GetActual(), want) || !fits(smallSize, forced.GetActual()):
		return fmt.Errorf("forced Resize from %s to %s: actual is %s, want at most %s and at least the target",
			formatSize(prev), formatSize(smallSize), formatSize(forced.GetActual()), formatSize(want))
	}
	if !s.caps[capGuestAgent] {
		return nil
	}
	_, err = s.waitSample(ctx, name, "with at most "+formatSize(want)+" online", func(m sample) bool {
		return m.onlineVCPU <= want.GetVcpuMilli() && m.onlineMemory <= want.GetMemoryBytes()
	})
	return err
}

func checkRefusedDownscale(ctx context.Context, s *session) error {
	start := size(smallSize.GetVcpuMilli(), bigSize.GetMemoryBytes())
	spec, _, err := s.startVM(ctx, "refuse", start)
	if err != nil {
		return err
	}
	name := spec.GetName()
	if err := s.generateLoad(ctx, &pb.GenerateLoadRequest{Name: name, MemoryBytes: memoryLoad, DurationNanos: int64(loadFor)}); err != nil {
		return err
	}
	busy, err := s.waitSample(ctx, name, "using more than "+formatBytes(smallSize.GetMemoryBytes()), func(m sample) bool {
		return m.memoryUsed > smallSize.GetMemoryBytes()
	})
	if err != nil {
		return err
	}
	resp, err := s.resize(ctx, name, smallSize, false)
	if err != nil {
		return err
	}
	switch {
	case !resp.GetRefused():
		return fmt.Errorf("a downscale to %s with the guest using %s was not refused (actual %s)", formatSize(smallSize), formatBytes(busy.memoryUsed), formatSize(resp.GetActual()))
	case resp.GetRefusalReason() == "":
		return errors.New("the downscale was refused without a reason")
	case !sameSize(resp.GetActual(), start):
		return fmt.Errorf("the downscale was refused, yet the size went from %s to %s", formatSize(start), formatSize(resp.GetActual()))
	}
	listed, err := s.listed(ctx, name)
	if err != nil {
		return err
	}
	if !sameSize(listed.GetSize(), start) {
		return fmt.Errorf("the downscale was refused, yet ListVMs says %s has %s, not %s", name, formatSize(listed.GetSize()), formatSize(start))
	}
	return nil
}

func checkMigrate(ctx context.Context, s *session) error {
	spec, _, err := s.startVM(ctx, "migrate", smallSize)
	if err != nil {
		return err
	}
	name, target := spec.GetName(), s.opts.Nodes[1]
	// Hotplugged devices are what a careless migration loses.
	if s.caps[capVCPUHotplug] || s.caps[capMemoryVirtioMem] {
		if _, err := s.resizeUp(ctx, name, s.grown()); err != nil {
			return fmt.Errorf("before migrating: %w", err)
		}
	}
	before, err := s.listed(ctx, name)
	if err != nil {
		return err
	}
	var last sample
	if s.caps[capGuestAgent] {
		if last, err = s.waitSample(ctx, name, "before the migration", func(sample) bool { return true }); err != nil {
			return err
		}
	}
	m, err := s.migrate(ctx, name, target)
	switch {
	case err != nil:
		return err
	case m.err != nil:
		return fmt.Errorf("Migrate to %s: %w", target, m.err)
	case m.end().GetPhase() != pb.MigrationPhase_MIGRATION_PHASE_COMPLETED:
		return fmt.Errorf("Migrate to %s ended with %s: %s", target, m.end().GetPhase(), m.end().GetMessage())
	case len(m.progress) < 2:
		return errors.New("Migrate sent COMPLETED and nothing before it: want progress while it runs")
	}
	after, err := s.listedRunning(ctx, name, target, nil)
	if err != nil {
		return fmt.Errorf("after the migration: %w", err)
	}
	if !sameSize(after.GetSize(), before.GetSize()) {
		return fmt.Errorf("the migration changed the size from %s to %s", formatSize(before.GetSize()), formatSize(after.GetSize()))
	}
	if !s.caps[capGuestAgent] {
		return nil
	}
	next, err := s.waitSample(ctx, name, "taken after the migration", func(m sample) bool { return m.t > last.t })
	if err != nil {
		return err
	}
	if next.uptime <= last.uptime {
		return fmt.Errorf("the guest's uptime went from %s before the migration to %s after it: the guest restarted instead of moving",
			time.Duration(last.uptime), time.Duration(next.uptime))
	}
	return nil
}

func checkMigrateUnknownNode(ctx context.Context, s *session) error {
	spec, st, err := s.startVM(ctx, "lost", smallSize)
	if err != nil {
		return err
	}
	nowhere := s.vms.prefix + "-no-such-node"
	m, err := s.migrate(ctx, spec.GetName(), nowhere)
	switch {
	case err != nil:
		return err
	case m.err == nil && m.end().GetPhase() != pb.MigrationPhase_MIGRATION_PHASE_FAILED:
		return fmt.Errorf("Migrate to node %q, which does not exist, ended with %s, want FAILED or an error", nowhere, m.end().GetPhase())
	}
	if _, err := s.listedRunning(ctx, spec.GetName(), spec.GetNode(), st.GetHandle()); err != nil {
		return fmt.Errorf("after a migration to a node that does not exist: %w", err)
	}
	return nil
}

func checkRecoverAfterPluginKill(ctx context.Context, s *session) error {
	spec, st, err := s.startVM(ctx, "kill", smallSize)
	if err != nil {
		return err
	}
	if err := s.relaunch(ctx); err != nil {
		return err
	}
	if _, err := s.listedRunning(ctx, spec.GetName(), spec.GetNode(), st.GetHandle()); err != nil {
		return fmt.Errorf("after the plugin was killed: %w", err)
	}
	if err := s.recoverVM(ctx, spec, st.GetHandle()); err != nil {
		return err
	}
	if !s.caps[capGuestAgent] {
		return nil
	}
	_, err = s.waitSample(ctx, spec.GetName(), "after the plugin was killed", func(sample) bool { return true })
	return err
}

func checkRecoverAfterHostLoss(ctx context.Context, s *session) error {
	spec, _, err := s.startVM(ctx, "loss", smallSize)
	if err != nil {
		return err
	}
	if err := s.relaunch(ctx); err != nil {
		return err
	}
	// A host that lost its state knows the spec from its configuration
	// and must find the handle where the plugin left it.
	listed, err := s.listed(ctx, spec.GetName())
	if err != nil {
		return fmt.Errorf("a new plugin process must find the VMs the old one started: %w", err)
	}
	return s.recoverVM(ctx, spec, listed.GetHandle())
}

func checkStop(ctx context.Context, s *session) error {
	spec, _, err := s.startVM(ctx, "stop", smallSize)
	if err != nil {
		return err
	}
	name := spec.GetName()
	if err := s.stopVM(ctx, name); err != nil {
		return err
	}
	vms, err := s.listVMs(ctx)
	if err != nil {
		return err
	}
	for _, v := range vms {
		if v.GetName() == name && v.GetState() == pb.VMState_VM_STATE_RUNNING {
			return fmt.Errorf("ListVMs still shows %s RUNNING after StopVM", name)
		}
	}
	if err := s.stopVM(ctx, name); err != nil {
		return fmt.Errorf("again (StopVM must be idempotent): %w", err)
	}
	return nil
}

func checkLoad(ctx context.Context, s *session) error {
	spec, _, err := s.startVM(ctx, "load", smallSize)
	if err != nil {
		return err
	}
	name := spec.GetName()
	idle, err := s.waitSample(ctx, name, "before the load", func(sample) bool { return true })
	if err != nil {
		return err
	}
	if err := s.generateLoad(ctx, &pb.GenerateLoadRequest{Name: name, CpuWorkers: loadWorkers, DurationNanos: int64(loadFor)}); err != nil {
		return err
	}
	want := idle.load1 + loadRise
	_, err = s.waitSample(ctx, name, fmt.Sprintf("with load1 above %.2f (%d CPU workers)", want, loadWorkers), func(m sample) bool {
		return m.load1 > want
	})
	return err
}
