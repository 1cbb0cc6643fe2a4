package vm

import (
	"context"
	"time"
)

// Stop stops the VM for good: Halt, then its disk is deleted.
func (v *VM) Stop(ctx context.Context, grace time.Duration) error {
	if err := v.Halt(ctx, grace); err != nil {
		return err
	}
	return RemoveDisk(v.env.RunDir, v.name)
}

// Halt shuts the VM down and keeps its disk, for a restart: the guest gets
// grace to power off, then QEMU is told to quit, then killed. Its directory
// keeps serial.log only. Halting a stopped VM does nothing.
func (v *VM) Halt(ctx context.Context, grace time.Duration) error {
	// A migration would hold the VM until it ends; a stop ends it sooner.
	v.CancelMigration()
	v.ops.Lock()
	defer v.ops.Unlock()
	v.mu.Lock()
	inst, dir := v.inst, v.dir
	// No longer the VM's QEMU: its exit is not a failure.
	v.inst, v.state, v.message = nil, Stopped, ""
	v.mu.Unlock()
	if inst == nil {
		// A VM that failed before or during recovery: clear what it left.
		if dir != "" {
			i := newInstance(dir)
			i.log = v.env.Log.With("vm", v.name)
			i.release(v.env)
		}
		return nil
	}
	started := time.Now()
	if err := inst.shutdown(ctx, grace); err != nil {
		v.mu.Lock()
		v.inst, v.state, v.message = inst, Failed, "stop failed: "+err.Error()
		v.mu.Unlock()
		return err
	}
	inst.release(v.env)
	inst.log.Info("VM stopped", "ms", time.Since(started).Milliseconds())
	return nil
}
