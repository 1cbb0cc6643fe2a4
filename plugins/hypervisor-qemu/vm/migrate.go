package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/qmp"
)

// Phase of a migration.
type Phase int

// Phases.
const (
	Preparing Phase = iota
	Transferring
	Completed
	MigrationFailed
	Cancelled
)

// Progress is one report of a migration.
type Progress struct {
	Phase          Phase
	Transferred    uint64
	Remaining      uint64
	BytesPerSecond uint64
	// Downtime is QEMU's expectation while transferring, the measured
	// pause once completed.
	Downtime time.Duration
	Elapsed  time.Duration
	Message  string
}

// Intervals and bounds of a migration.
const (
	migrationPoll = 100 * time.Millisecond
	// resumeTimeout bounds the wait for the destination to run after the
	// source completed.
	resumeTimeout = 10 * time.Second
	// cleanupTimeout bounds undoing a failed migration, which runs even
	// when the caller has gone.
	cleanupTimeout = 30 * time.Second
)

// migrateStatus is the part of QMP's query-migrate used here.
type migrateStatus struct {
	Status           string `json:"status"`
	ErrorDesc        string `json:"error-desc"`
	Downtime         int64  `json:"downtime"`
	ExpectedDowntime int64  `json:"expected-downtime"`
	RAM              struct {
		Transferred uint64  `json:"transferred"`
		Remaining   uint64  `json:"remaining"`
		Mbps        float64 `json:"mbps"`
	} `json:"ram"`
}

// Target is where a migration goes and how.
type Target struct {
	Node string
	// Tap and NetNS are the VM's port on Node; required for a VM with a
	// NIC, which keeps its MAC.
	Tap, NetNS   string
	Bandwidth    uint64
	Downtime     time.Duration
	SkipAnnounce bool
}

// announce are the destination's announcement rounds (QEMU's defaults, in
// ms): RARP from the NIC's MAC, and a gratuitous ARP from a virtio-net guest
// that offers it, so the network learns the VM's new port at once.
var announce = map[string]any{"initial": 50, "max": 550, "rounds": 5, "step": 100}

// Migrate live-migrates the VM to another logical node of this machine: a
// destination QEMU with the same devices (and the target's tap) takes the
// guest over. Problems with the request are returned as errors; once the
// migration has begun, its outcome is the last Progress (Completed,
// MigrationFailed or Cancelled). On any failure the source keeps running.
func (v *VM) Migrate(ctx context.Context, to Target, progress func(Progress)) error {
	v.ops.Lock()
	defer v.ops.Unlock()
	src, err := v.current()
	if err != nil {
		return err
	}
	if to.Node == src.rec.Spec.Node {
		return invalid("target_node: %s already runs on %s", v.name, to.Node)
	}
	tap, err := v.targetPort(src, to)
	if err != nil {
		return err
	}
	if tap != nil {
		defer tap.Close()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	v.mu.Lock()
	v.state, v.cancelMigration = Migrating, cancel
	v.mu.Unlock()

	m := &migration{v: v, src: src, to: to, tap: tap, started: time.Now(), progress: progress}
	m.report(Progress{Phase: Preparing, Message: "starting the destination on " + to.Node})
	final := m.run(ctx)
	final.Elapsed = time.Since(m.started)
	if final.Phase == Completed {
		src.log.Info("migrated", "to", to.Node, "ms", final.Elapsed.Milliseconds(), "downtime_ms", final.Downtime.Milliseconds())
	} else {
		src.log.Warn("migration did not complete; the source runs on", "to", to.Node, "phase", final.Phase, "reason", final.Message)
	}
	progress(final)
	return nil
}

// targetPort checks the target's port against the VM's NIC and opens it;
// nil for a VM without one.
func (v *VM) targetPort(src *instance, to Target) (*os.File, error) {
	if src.rec.Machine.Tap == "" {
		if to.Tap != "" || to.NetNS != "" {
			return nil, invalid("target_tap: %s has no NIC, so no port on the target (target_tap %q, target_netns %q)", v.name, to.Tap, to.NetNS)
		}
		return nil, nil
	}
	if to.Tap == "" {
		return nil, invalid("target_tap: %s has a NIC: the migration needs its tap on %s", v.name, to.Node)
	}
	if err := validatePort("target_tap", "target_netns", to.Tap, to.NetNS); err != nil {
		return nil, err
	}
	tap, err := openTap(to.NetNS, to.Tap)
	if err != nil {
		return nil, invalid("target_tap: %v", err)
	}
	return tap, nil
}

// CancelMigration cancels the migration under way; without one it does
// nothing.
func (v *VM) CancelMigration() {
	v.mu.Lock()
	cancel := v.cancelMigration
	v.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

type migration struct {
	v        *VM
	src, dst *instance
	to       Target
	tap      *os.File
	started  time.Time
	progress func(Progress)
	// stopped is when the source paused (its STOP event), zero until then;
	// downtime runs from it to the destination's cont.
	stopped  time.Time
	downtime time.Duration
}

// pausesForCopy says whether the source must be paused for the whole copy
// rather than only at the end. Under TCG, QEMU before 9.0 loses guest writes
// in a live migration: clearing the dirty bitmap's aligned words does not
// re-arm TCG's TLB, so a page written again after it was sent is not sent
// again (upstream's "physmem: Fix migration dirty bitmap coherency with TCG
// memory access"). Debian 12's QEMU 7.2 has the bug; the guest's kernel
// then panics on corrupted memory. KVM tracks dirty pages itself, so under
// KVM the migration stays live.
func pausesForCopy(accel string) bool { return accel == "tcg" }

func (m *migration) report(p Progress) {
	p.Elapsed = time.Since(m.started)
	m.progress(p)
}

// run migrates and returns the outcome; whatever fails, the source is left
// running and the destination gone.
func (m *migration) run(ctx context.Context) Progress {
	st, err := m.transfer(ctx)
	if err == nil {
		err = m.takeOver(ctx)
	}
	if err == nil {
		downtime := m.downtime
		if downtime == 0 { // no STOP event seen: QEMU's own figure
			downtime = time.Duration(st.Downtime) * time.Millisecond
		}
		return Progress{Phase: Completed, Transferred: st.RAM.Transferred, Downtime: downtime, Message: "running on " + m.to.Node}
	}
	m.rollBack(err)
	phase := MigrationFailed
	if ctx.Err() != nil || st.Status == "cancelled" {
		phase = Cancelled
	}
	return Progress{Phase: phase, Transferred: st.RAM.Transferred, Message: err.Error()}
}

// transfer starts the destination and streams the source's memory to it.
func (m *migration) transfer(ctx context.Context) (migrateStatus, error) {
	var st migrateStatus
	spec := m.src.rec.Spec
	spec.Node = m.to.Node
	machine := m.src.rec.Machine
	machine.Requested = m.src.dev.Requested
	if machine.Tap != "" {
		spec.Tap, spec.NetNS = m.to.Tap, m.to.NetNS
		machine.Tap, machine.NetNS = m.to.Tap, m.to.NetNS
	}
	dev := m.src.dev
	dev.CPUs = nil // recorded as they are replayed
	dst, err := launch(ctx, m.v.env, Record{Spec: spec, Machine: machine, Created: time.Now().UTC(), Incoming: true}, dev, m.tap)
	if err != nil {
		return st, err
	}
	m.dst = dst
	// The destination must have every device the source has, with the same
	// ids, before the stream arrives.
	for _, slot := range m.src.dev.CPUs {
		if err := dst.qmp.Execute(ctx, "device_add", slot.deviceAddArgs(), nil); err != nil {
			return st, fmt.Errorf("replaying vCPU %s on the destination: %w", slot.ID, err)
		}
		dst.dev.CPUs = append(dst.dev.CPUs, slot)
	}
	if err := dst.saveDevices(); err != nil {
		return st, err
	}
	// QEMU announces the VM itself as the destination starts it, with
	// these parameters of the destination's; no rounds silence it.
	rounds := announce["rounds"]
	if m.to.SkipAnnounce {
		rounds = 0
	}
	announceParams := map[string]any{"announce-initial": announce["initial"], "announce-max": announce["max"], "announce-rounds": rounds, "announce-step": announce["step"]}
	if err := dst.qmp.Execute(ctx, "migrate-set-parameters", announceParams, nil); err != nil {
		return st, err
	}
	uri := "unix:" + filepath.Join(dst.dir, migrateSock)
	if err := dst.qmp.Execute(ctx, "migrate-incoming", map[string]any{"uri": uri}, nil); err != nil {
		return st, err
	}
	srcMon, err := m.src.monitor(ctx)
	if err != nil {
		return st, err
	}
	params := map[string]any{"max-bandwidth": m.to.Bandwidth, "downtime-limit": max(m.to.Downtime.Milliseconds(), 1)}
	if err := srcMon.Execute(ctx, "migrate-set-parameters", params, nil); err != nil {
		return st, err
	}
	// MIGRATION events end each wait for the next poll early: the end of a
	// migration is seen at once rather than up to a poll later.
	capabilities := []map[string]any{{"capability": "events", "state": true}}
	if err := srcMon.Execute(ctx, "migrate-set-capabilities", map[string]any{"capabilities": capabilities}, nil); err != nil {
		return st, err
	}
	events := srcMon.Subscribe("MIGRATION", "STOP")
	defer events.Close()
	m.liftQuotas()
	if pausesForCopy(m.src.rec.Machine.Accel) {
		if err := srcMon.Execute(ctx, "stop", nil, nil); err != nil {
			return st, fmt.Errorf("pausing the source for the copy: %w", err)
		}
	}
	if err := srcMon.Execute(ctx, "migrate", map[string]any{"uri": uri}, nil); err != nil {
		return st, err
	}
	st, err = m.follow(ctx, srcMon, events)
	// The source's STOP comes before the reply that says completed.
	for len(events.C()) > 0 {
		m.observe(<-events.C())
	}
	return st, err
}

// observe notes when the source paused.
func (m *migration) observe(ev qmp.Event) {
	if ev.Name == "STOP" && m.stopped.IsZero() {
		m.stopped = ev.Time
	}
}

// follow polls the source until the migration ends, reporting progress. A
// cancelled ctx cancels the migration in QEMU and follows it to its end.
func (m *migration) follow(ctx context.Context, srcMon *qmp.Monitor, events *qmp.Subscription) (migrateStatus, error) {
	tick := time.NewTicker(migrationPoll)
	defer tick.Stop()
	cancelled, dstExited := ctx.Done(), m.dst.proc.Exited()
	for {
		// Polling goes on after a cancel, so it may not use ctx.
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), attachTimeout)
		var st migrateStatus
		err := srcMon.Execute(qctx, "query-migrate", nil, &st)
		cancel()
		if err != nil {
			return st, err
		}
		switch st.Status {
		case "completed":
			return st, nil
		case "failed":
			return st, fmt.Errorf("QEMU reports the migration failed: %s", st.ErrorDesc)
		case "cancelled":
			return st, errors.New("migration cancelled")
		}
		m.report(Progress{
			Phase:          Transferring,
			Transferred:    st.RAM.Transferred,
			Remaining:      st.RAM.Remaining,
			BytesPerSecond: uint64(st.RAM.Mbps * 1e6 / 8),
			Downtime:       time.Duration(st.ExpectedDowntime) * time.Millisecond,
			Message:        st.Status,
		})
		select {
		case <-cancelled:
			// Once: then follow QEMU to the end of it. The destination
			// exits when its stream breaks; that is expected now.
			cancelled, dstExited = nil, nil
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), attachTimeout)
			err := srcMon.Execute(cctx, "migrate_cancel", nil, nil)
			cancel()
			if err != nil {
				return st, fmt.Errorf("cancelling the migration: %w", err)
			}
		case <-dstExited:
			return st, fmt.Errorf("the destination QEMU exited; %s", serialTail(m.dst.dir))
		case ev := <-events.C():
			m.observe(ev)
		case <-tick.C:
		}
	}
}

// takeOver waits for the destination to hold the guest, runs it there,
// makes it the VM and lets the source go. Until the destination is
// recorded as the VM, a crash leaves the source in charge.
func (m *migration) takeOver(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	loaded, cancel := context.WithTimeout(ctx, resumeTimeout)
	defer cancel()
	// Polled often: the guest is paused until the cont below.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var st struct {
		Status string `json:"status"`
	}
	for {
		if err := m.dst.qmp.Execute(loaded, "query-status", nil, &st); err != nil {
			return fmt.Errorf("the destination after the migration: %w; %s", err, serialTail(m.dst.dir))
		}
		if st.Status != "inmigrate" {
			break
		}
		select {
		case <-loaded.Done():
			return fmt.Errorf("the destination is %q, not done loading, %v after the migration completed", st.Status, resumeTimeout)
		case <-tick.C:
		}
	}
	if hook := m.v.env.BeforeResume; hook != nil && st.Status != "running" {
		if err := hook(ctx, m.src.qmp, m.dst.qmp); err != nil {
			return err
		}
	}
	ctx, cancelRest := context.WithTimeout(ctx, resumeTimeout)
	defer cancelRest()
	if st.Status != "running" {
		if err := m.dst.qmp.Execute(ctx, "cont", nil, nil); err != nil {
			return fmt.Errorf("running the guest on the destination (it was %q): %w; %s", st.Status, err, serialTail(m.dst.dir))
		}
	}
	if !m.stopped.IsZero() {
		m.downtime = time.Since(m.stopped)
	}
	m.dst.rec.Incoming = false
	if err := m.dst.save(); err != nil {
		return err
	}
	if !m.to.SkipAnnounce {
		// Once more now that the guest runs: its virtio-net driver sends
		// the gratuitous ARP, and a network that missed QEMU's first
		// rounds learns the new port all the same.
		if err := m.dst.qmp.Execute(ctx, "announce-self", announce, nil); err != nil {
			m.dst.log.Warn("announce-self after the migration", "error", err)
		}
	}
	m.quota(m.dst)
	m.v.adopt(m.dst)
	if err := m.src.shutdown(ctx, 0); err != nil {
		m.src.log.Error("stopping the source after the migration", "error", err)
	}
	m.src.release(m.v.env)
	return nil
}

// liftQuotas lifts the CPU quota of source and destination while the memory
// moves (see cgroup.Unlimit).
func (m *migration) liftQuotas() {
	if m.v.env.CPU == nil {
		return
	}
	for _, inst := range []*instance{m.src, m.dst} {
		if err := m.v.env.CPU.Unlimit(inst.cgroupName()); err != nil {
			inst.log.Warn("lifting the CPU quota for the migration", "error", err)
		}
	}
}

// quota gives the instance that now runs the guest its quota back.
func (m *migration) quota(inst *instance) {
	if m.v.env.CPU == nil {
		return
	}
	if err := m.v.env.CPU.SetQuota(inst.cgroupName(), inst.dev.Size.VCPUMilli); err != nil {
		inst.log.Warn("restoring the CPU quota after the migration", "error", err)
	}
}

// rollBack removes the destination and resumes the source if the
// migration left it paused; the VM's message says what happened.
func (m *migration) rollBack(cause error) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if m.dst != nil {
		m.dst.destroy(m.v.env)
	}
	m.quota(m.src)
	m.v.mu.Lock()
	if m.v.state == Migrating {
		m.v.state = Running
	}
	m.v.message = fmt.Sprintf("migration to %s failed: %v", m.to.Node, cause)
	m.v.cancelMigration = nil
	m.v.mu.Unlock()
	if err := resume(ctx, m.src); err != nil {
		m.src.log.Error("resuming the source after a failed migration", "error", err)
		m.v.setFailed(m.src, "the source did not resume after a failed migration: "+err.Error())
	}
}

// resume continues a QEMU that a migration left paused; a running one is
// left alone.
func resume(ctx context.Context, inst *instance) error {
	mon, err := inst.monitor(ctx)
	if err != nil {
		return err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := mon.Execute(ctx, "query-status", nil, &st); err != nil {
		return err
	}
	switch st.Status {
	case "running":
		return nil
	case "postmigrate", "paused", "finish-migrate":
		inst.log.Warn("resuming a QEMU a migration left paused", "status", st.Status)
		return mon.Execute(ctx, "cont", nil, nil)
	}
	return fmt.Errorf("QEMU is %q", st.Status)
}
