// Package vm runs one VM as QEMU processes: start, resize, live-migrate,
// stop, and re-attach to a QEMU that outlived the plugin. A VM is one QEMU
// at a time (two during a migration); each lives in an instance directory
// under the run dir, which is all a new plugin process needs to find it.
package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentconn"
	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentproto"
)

// State is where a VM is in its life.
type State int

// States.
const (
	Starting State = iota
	Running
	Migrating
	Stopped
	Failed
)

func (s State) String() string {
	return [...]string{"starting", "running", "migrating", "stopped", "failed"}[s]
}

// ErrNotRunning is returned by operations on a VM that has no running QEMU.
var ErrNotRunning = errors.New("vm is not running")

// Status is a VM as the host sees it.
type Status struct {
	Name    string
	Node    string
	State   State
	Size    Size
	Handle  []byte
	Message string
}

// VM is safe for concurrent use. Operations that change it (resize,
// migrate, stop) run one at a time; Status never waits for them.
type VM struct {
	env  *Env
	name string
	ops  sync.Mutex

	mu      sync.Mutex
	inst    *instance // nil when no QEMU runs
	dir     string    // the last instance's directory
	node    string
	size    Size
	state   State
	message string
	// cancelMigration stops the migration under way, if any.
	cancelMigration func()
}

// New is a VM about to be started from spec.
func New(env *Env, spec Spec) *VM {
	return &VM{env: env, name: spec.Name, node: spec.Node, size: spec.Size, state: Starting}
}

// Name is the VM's name.
func (v *VM) Name() string { return v.name }

// Start boots the VM and waits for its guest agent's hello.
func (v *VM) Start(ctx context.Context, spec Spec) error {
	v.ops.Lock()
	defer v.ops.Unlock()
	started := time.Now()
	inst, err := v.boot(ctx, spec)
	if err != nil {
		v.setFailed(nil, err.Error())
		return err
	}
	inst.log.Info("VM started", "ms", time.Since(started).Milliseconds(), "pid", inst.handle.PID)
	v.adopt(inst)
	return nil
}

// boot starts spec's QEMU with its image, disk and NIC and waits for the
// guest agent. A disk it had to create goes again when the boot fails.
func (v *VM) boot(ctx context.Context, spec Spec) (_ *instance, err error) {
	img, err := v.env.image(spec.Image)
	if err != nil {
		return nil, err
	}
	base := v.env.Base
	base.Kernel, base.Initrd = img.Kernel, img.Initrd
	m := machineFor(spec, base)
	var created bool
	if m.Disk, created, err = v.env.ensureDisk(ctx, spec.Name, img.Rootfs); err != nil {
		return nil, err
	}
	if created {
		defer func() {
			if err != nil {
				_ = RemoveDisk(v.env.RunDir, spec.Name)
			}
		}()
	}
	var tap *os.File
	if spec.Tap != "" {
		if tap, err = openTap(spec.NetNS, spec.Tap); err != nil {
			return nil, invalid("spec.tap: %v", err)
		}
		defer tap.Close()
	}
	inst, err := launch(ctx, v.env, Record{Spec: spec, Machine: m, Created: time.Now().UTC()}, Devices{Requested: m.Requested, Size: spec.Size}, tap)
	if err != nil {
		return nil, err
	}
	wait, cancel := context.WithTimeout(ctx, v.env.AgentTimeout)
	defer cancel()
	if _, err := inst.agent.Wait(wait, func(s agentconn.State) bool { return s.Hellos > 0 }); err != nil {
		err = fmt.Errorf("the guest agent of %s did not say hello within %v (%v); %s", spec.Name, v.env.AgentTimeout, err, serialTail(inst.dir))
		inst.destroy(v.env)
		return nil, err
	}
	return inst, nil
}

// adopt makes inst the VM's running QEMU and watches it.
func (v *VM) adopt(inst *instance) {
	v.mu.Lock()
	v.inst, v.dir, v.node, v.state, v.message, v.cancelMigration = inst, inst.dir, inst.rec.Spec.Node, Running, "", nil
	v.size = inst.dev.Size
	v.mu.Unlock()
	go v.watch(inst)
}

// watch fails the VM when its QEMU exits while it is still the VM's.
func (v *VM) watch(inst *instance) {
	select {
	case <-inst.proc.Exited():
	case <-inst.detached:
		return
	}
	v.mu.Lock()
	current := v.inst == inst
	v.mu.Unlock()
	if !current {
		return
	}
	msg := fmt.Sprintf("QEMU (pid %d) exited unexpectedly; %s", inst.handle.PID, serialTail(inst.dir))
	inst.log.Error("VM failed", "reason", msg)
	v.setFailed(inst, msg)
}

// setFailed records a failure; when inst is given, only while it is still
// the VM's QEMU.
func (v *VM) setFailed(inst *instance, message string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if inst != nil && v.inst != inst {
		return
	}
	v.state, v.message = Failed, message
}

// current is the VM's QEMU, or ErrNotRunning.
func (v *VM) current() (*instance, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.inst == nil || v.state == Failed || v.state == Stopped {
		return nil, fmt.Errorf("%w: %s is %s: %s", ErrNotRunning, v.name, v.state, v.message)
	}
	return v.inst, nil
}

// Status is the VM now.
func (v *VM) Status() Status {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := Status{Name: v.name, Node: v.node, State: v.state, Size: v.size, Message: v.message}
	if v.inst != nil {
		s.Handle, _ = json.Marshal(v.inst.handle)
	}
	return s
}

// GenerateLoad asks the guest agent to load the guest.
func (v *VM) GenerateLoad(ctx context.Context, workers int, memory uint64, d time.Duration) error {
	inst, err := v.current()
	if err != nil {
		return err
	}
	reply, err := inst.agent.Request(ctx, agentproto.Message{Op: agentproto.OpLoad, CPUWorkers: workers, MemoryBytes: memory, DurationNs: int64(d)})
	if err != nil {
		return err
	}
	if !reply.OK {
		return fmt.Errorf("%w: the guest refused the load: %s", ErrInvalid, reply.Error)
	}
	return nil
}

// Detach lets go of the VM's QEMU, which runs on for the next plugin.
func (v *VM) Detach() {
	v.mu.Lock()
	inst := v.inst
	v.inst = nil
	v.mu.Unlock()
	if inst != nil {
		inst.detach()
	}
}
