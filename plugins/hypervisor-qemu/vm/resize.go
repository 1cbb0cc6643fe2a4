package vm

import (
	"context"
	"fmt"
	"time"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentconn"
	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentproto"
	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/qmp"
)

// Resized is the outcome of a resize.
type Resized struct {
	// Actual is what the guest has online now.
	Actual  Size
	Refused bool
	Reason  string
}

// memoryDevice is the virtio-mem device's id on every command line.
const memoryDevice = "vm0"

// How often a resize checks on the guest.
const (
	memoryPoll = 25 * time.Millisecond
	cpuPoll    = 100 * time.Millisecond
)

// Resize brings the VM to target: vCPUs are onlined, hotplugged (never
// unplugged) or offlined by the agent, with the CPU quota trimming a
// fraction; memory is virtio-mem's requested size. A downscale first asks
// the guest, unless force; a refusal changes nothing.
func (v *VM) Resize(ctx context.Context, target Size, force bool, consentTimeout time.Duration) (Resized, error) {
	v.ops.Lock()
	defer v.ops.Unlock()
	inst, err := v.current()
	if err != nil {
		return Resized{}, err
	}
	if err := inst.rec.Spec.Bounds.check("target", target); err != nil {
		return Resized{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, v.env.ResizeTimeout)
	defer cancel()
	started := time.Now()
	// A guest just re-attached to may not have reported yet.
	guest, err := inst.agent.Wait(ctx, func(s agentconn.State) bool { return s.OnlineCPUs > 0 && s.MemoryTotal > 0 })
	if err != nil {
		return Resized{}, fmt.Errorf("no report from the guest agent of %s: %w", v.name, err)
	}
	mon, err := inst.monitor(ctx)
	if err != nil {
		return Resized{}, err
	}
	plugged, err := pluggedMemory(ctx, mon, inst.rec.Machine)
	if err != nil {
		return Resized{}, err
	}
	cpus := cpusFor(target.VCPUMilli)
	requested := inst.rec.Machine.requestedFor(target.MemoryBytes)
	if !force && (cpus < guest.OnlineCPUs || requested < plugged) {
		// The guest judges memory by the total it would see once the
		// unplug is done; 0 says memory does not shrink.
		var memTotal uint64
		if requested < plugged {
			memTotal = guest.MemoryTotal - min(plugged-requested, guest.MemoryTotal-1)
		}
		if reason := v.consent(ctx, inst, cpus, memTotal, consentTimeout); reason != "" {
			v.env.Reporter.DownscaleRefused(v.name, reason)
			inst.log.Info("downscale refused", "target", target, "reason", reason)
			return Resized{Actual: v.actual(inst, guest.OnlineCPUs, plugged), Refused: true, Reason: reason}, nil
		}
	}

	var sizeChanges *qmp.Subscription
	if requested != plugged {
		// Before qom-set: the event may come before its reply.
		sizeChanges = mon.Subscribe("MEMORY_DEVICE_SIZE_CHANGE")
		defer sizeChanges.Close()
	}
	if err := v.applyCPUs(ctx, inst, mon, target.VCPUMilli); err != nil {
		return Resized{}, err
	}
	if requested != inst.dev.Requested {
		if err := mon.Execute(ctx, "qom-set", map[string]any{"path": memoryDevice, "property": "requested-size", "value": requested}, nil); err != nil {
			return Resized{}, err
		}
	}
	inst.dev.Requested, inst.dev.Size = requested, target
	if err := inst.saveDevices(); err != nil {
		return Resized{}, err
	}

	if err := awaitCPUs(ctx, inst, cpus); err != nil {
		inst.log.Warn("the guest did not reach its vCPU target in time", "want", cpus, "online", inst.agent.State().OnlineCPUs, "error", err)
	}
	if sizeChanges != nil {
		plugged = awaitMemory(ctx, inst, mon, sizeChanges, guest.MemoryTotal, plugged, requested)
	}
	actual := v.actual(inst, inst.agent.State().OnlineCPUs, plugged)
	v.mu.Lock()
	v.size = actual
	v.mu.Unlock()
	inst.log.Info("resized", "target", target, "actual", actual, "ms", time.Since(started).Milliseconds())
	return Resized{Actual: actual}, nil
}

// consent asks the guest whether it may shrink to cpus vCPUs and a memory
// total of memTotal: "" when it agrees, or why not. No answer in time is a
// refusal too: the guest may be too busy to answer.
func (v *VM) consent(ctx context.Context, inst *instance, cpus int, memTotal uint64, timeout time.Duration) string {
	req := agentproto.Message{Op: agentproto.OpDownscale, CPUs: cpus, MemoryBytes: memTotal}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	reply, err := inst.agent.Request(ctx, req)
	switch {
	case err != nil:
		return fmt.Sprintf("the guest did not answer the downscale request within %v: %v", timeout, err)
	case !reply.OK:
		return reply.Error
	}
	return ""
}

// applyCPUs sets the agent's vCPU target, plugs what is missing (the agent
// onlines them as they appear, up to the target) and sets the quota.
func (v *VM) applyCPUs(ctx context.Context, inst *instance, mon *qmp.Monitor, milli int64) error {
	var slots []HotpluggableCPU
	present := inst.rec.Machine.BootCPUs + len(inst.dev.CPUs)
	if cpusFor(milli) > present {
		if err := mon.Execute(ctx, "query-hotpluggable-cpus", nil, &slots); err != nil {
			return err
		}
	}
	plan, err := planCPUs(milli, present, slots)
	if err != nil {
		return err
	}
	reply, err := inst.agent.Request(ctx, agentproto.Message{Op: agentproto.OpSetCPUs, CPUs: plan.Online})
	if err != nil {
		return err
	}
	if !reply.OK && len(plan.Plug) == 0 {
		return fmt.Errorf("the guest could not set %d vCPUs online: %s", plan.Online, reply.Error)
	}
	for _, slot := range plan.Plug {
		if err := mon.Execute(ctx, "device_add", slot.deviceAddArgs(), nil); err != nil {
			return fmt.Errorf("hotplugging vCPU %s: %w", slot.ID, err)
		}
		// Recorded at once: a migration must recreate every plugged vCPU.
		inst.dev.CPUs = append(inst.dev.CPUs, slot)
		if err := inst.saveDevices(); err != nil {
			return err
		}
	}
	if v.env.CPU != nil {
		return v.env.CPU.SetQuota(inst.cgroupName(), milli)
	}
	return nil
}

// awaitCPUs waits for the guest to have cpus vCPUs online. A vCPU the
// kernel onlined by itself shows only in the agent's next metrics, a second
// later; asking for the target again every cpuPoll gets the count in the
// reply sooner.
func awaitCPUs(ctx context.Context, inst *instance, cpus int) error {
	for {
		wait, cancel := context.WithTimeout(ctx, cpuPoll)
		_, err := inst.agent.Wait(wait, func(s agentconn.State) bool { return s.OnlineCPUs == cpus })
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		if _, err := inst.agent.Request(ctx, agentproto.Message{Op: agentproto.OpSetCPUs, CPUs: cpus}); err != nil {
			return err
		}
	}
}

// awaitMemory waits for the device to reach requested (QEMU's size grows
// and shrinks only as the guest plugs and unplugs blocks) and, for growth,
// for the guest to report the larger total. It returns the plugged size.
//
// QEMU rate-limits MEMORY_DEVICE_SIZE_CHANGE to one a second per device, so
// the size is also polled: an event only ends a poll interval early.
func awaitMemory(ctx context.Context, inst *instance, mon *qmp.Monitor, changes *qmp.Subscription, totalBefore, pluggedBefore, requested uint64) uint64 {
	tick := time.NewTicker(memoryPoll)
	defer tick.Stop()
	plugged := pluggedBefore
	for plugged != requested {
		select {
		case <-ctx.Done():
			inst.log.Warn("the guest did not reach its memory target in time", "requested", requested, "plugged", plugged)
			return plugged
		case <-changes.C():
		case <-tick.C:
		}
		p, err := pluggedMemory(ctx, mon, inst.rec.Machine)
		if err != nil {
			inst.log.Warn("reading the plugged memory", "error", err)
			return plugged
		}
		plugged = p
	}
	if plugged > pluggedBefore {
		if _, err := inst.agent.Wait(ctx, func(s agentconn.State) bool { return s.MemoryTotal >= totalBefore+(plugged-pluggedBefore) }); err != nil {
			inst.log.Warn("the guest did not report its new memory in time", "plugged", plugged, "error", err)
		}
	}
	return plugged
}

// pluggedMemory is how much of the virtio-mem region the guest has plugged.
func pluggedMemory(ctx context.Context, mon *qmp.Monitor, m Machine) (uint64, error) {
	if m.Region == 0 {
		return 0, nil
	}
	var size uint64
	err := mon.Execute(ctx, "qom-get", map[string]any{"path": memoryDevice, "property": "size"}, &size)
	return size, err
}

// actual is the size a guest with online vCPUs and plugged memory has.
func (v *VM) actual(inst *instance, online int, plugged uint64) Size {
	return Size{
		VCPUMilli:   effectiveMilli(online, inst.dev.Size.VCPUMilli, v.env.CPU != nil),
		MemoryBytes: inst.rec.Machine.BaseMemory + plugged,
	}
}
