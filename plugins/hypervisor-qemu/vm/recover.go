package vm

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
)

// candidate is a live instance of a VM found on recovery.
type candidate struct {
	inst   *instance
	status string // QEMU's run state
}

// survivor picks which of a VM's live instances is the VM, or -1 when none
// holds the guest. Two live instances mean the plugin died during a
// migration, which QEMU may have finished on its own: a running QEMU beats
// a paused one (the source pauses when the destination took over), and a
// recorded one beats a destination that never took over. A destination
// that is not running never received the whole guest.
func survivor(cs []candidate) int {
	score := func(c candidate) int {
		switch running := c.status == "running"; {
		case running && !c.inst.rec.Incoming:
			return 3
		case running:
			return 2
		case !c.inst.rec.Incoming:
			return 1
		}
		return 0
	}
	best := -1
	for i, c := range cs {
		if s := score(c); s > 0 && (best < 0 || s > score(cs[best])) {
			best = i
		}
	}
	return best
}

// Recover re-attaches to a VM from its instance directories (normally one;
// two when the plugin died during a migration). The survivor becomes the
// VM and any other live QEMU is stopped. A VM with no live QEMU is returned
// Failed with the reason, never dropped: the host must hear of it.
func Recover(ctx context.Context, env *Env, name string, dirs []string) *VM {
	v := &VM{env: env, name: name, state: Failed}
	var live []candidate
	var reasons []string
	for _, dir := range dirs {
		inst, err := attach(ctx, env, dir)
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("%s: %v", filepath.Base(dir), err))
			v.remember(dir)
			continue
		}
		var st struct {
			Status string `json:"status"`
		}
		if err := inst.qmp.Execute(ctx, "query-status", nil, &st); err != nil {
			reasons = append(reasons, fmt.Sprintf("%s: %v", filepath.Base(dir), err))
			inst.detach()
			v.remember(dir)
			continue
		}
		live = append(live, candidate{inst: inst, status: st.Status})
	}
	best := survivor(live)
	for i, c := range live {
		if len(live) > 1 {
			// A migration between them may still be under way; the
			// survivor stays where it is.
			_ = c.inst.qmp.Execute(ctx, "migrate_cancel", nil, nil)
		}
		if i != best {
			c.inst.log.Warn("stopping a QEMU that is not the VM (left over from a migration)", "status", c.status, "pid", c.inst.handle.PID)
			c.inst.destroy(env)
		}
	}
	if best < 0 {
		v.message = "no running QEMU: " + strings.Join(reasons, "; ")
		if len(live) > 0 {
			v.message = "only an unfinished migration destination was left, without the guest; " + v.message
		}
		return v
	}
	inst := live[best].inst
	if err := v.settle(ctx, inst, live[best].status); err != nil {
		v.message = fmt.Sprintf("re-attached to %s but: %v", inst.dir, err)
		v.inst, v.dir, v.node, v.size = inst, inst.dir, inst.rec.Spec.Node, inst.dev.Size
		go v.watch(inst)
		return v
	}
	// Dead instances beside a live one are leftovers, not the VM.
	for _, dir := range dirs {
		if dir != inst.dir {
			stale := newInstance(dir)
			stale.log = inst.log
			stale.release(env)
		}
	}
	v.adopt(inst)
	inst.log.Info("re-attached to a running VM", "pid", inst.handle.PID)
	return v
}

// remember keeps the directory of a dead instance, so that stopping the
// failed VM clears it; a recorded VM wins over a migration's destination.
func (v *VM) remember(dir string) {
	var rec Record
	if err := readJSON(filepath.Join(dir, specFile), &rec); err != nil {
		if v.dir == "" {
			v.dir = dir
		}
		return
	}
	if v.dir == "" || !rec.Incoming {
		v.dir, v.node, v.size = dir, rec.Spec.Node, rec.Spec.Size
	}
}

// settle finishes what the plugin's death interrupted: a destination that
// took over is recorded as the VM, and a source a migration paused resumes.
func (v *VM) settle(ctx context.Context, inst *instance, status string) error {
	if inst.rec.Incoming {
		inst.rec.Incoming = false
		if err := inst.save(); err != nil {
			return err
		}
	}
	if status != "running" {
		return resume(ctx, inst)
	}
	return nil
}
