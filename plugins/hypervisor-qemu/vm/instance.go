package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentconn"
	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentproto"
	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/cgroup"
	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/proc"
	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/qmp"
)

// Reporter receives what guests say, under the VM's name: the stream
// follows a VM from one QEMU to the next.
type Reporter interface {
	Agent(vm string, m *agentproto.Message)
	DownscaleRefused(vm, reason string)
}

// Env is what all VMs of one plugin share.
type Env struct {
	// RunDir holds one directory per instance; absolute, since QEMU's
	// -daemonize moves it to /.
	RunDir string
	// Base is the machine every VM starts from (binary, default image,
	// accel, CPU model); the spec fills in the rest.
	Base Machine
	// ImagesDir holds the named guest images, guest-NAME/ each.
	ImagesDir string
	// QEMUImg creates the VMs' disks.
	QEMUImg string
	// AgentTimeout bounds the wait for a new guest's agent.
	AgentTimeout time.Duration
	// ResizeTimeout bounds the wait for a guest to online what it got.
	ResizeTimeout time.Duration
	// CPU enforces fractional vCPUs; nil when the host cannot.
	CPU      *cgroup.CPU
	Reporter Reporter
	Log      hclog.Logger
	// BeforeResume, if set, runs when a migration's destination holds the
	// guest and before it runs it, the source paused: a test compares the
	// two QEMUs' memory there.
	BeforeResume func(ctx context.Context, src, dst *qmp.Monitor) error
}

// attachTimeout bounds reconnecting to a QEMU that already runs.
const attachTimeout = 5 * time.Second

// killTimeout bounds the wait for a SIGKILLed QEMU to go.
const killTimeout = 10 * time.Second

// instance is one QEMU process and the plugin's connections to it.
type instance struct {
	dir    string
	rec    Record
	dev    Devices
	handle Handle
	proc   *proc.Process
	qmp    *qmp.Monitor
	agent  *agentconn.Conn
	log    hclog.Logger
	// detached is closed when the plugin lets go of the instance.
	detached     chan struct{}
	detachedOnce sync.Once
}

func newInstance(dir string) *instance {
	return &instance{dir: dir, detached: make(chan struct{})}
}

// cgroupName is the instance's CPU group: the directory's name, unique per
// VM and node, so a migration's two QEMUs have a group each.
func (i *instance) cgroupName() string { return filepath.Base(i.dir) }

// launch starts QEMU for rec (its Args are filled in here) with devices dev,
// handing it tap (nil without a NIC), and connects to it. Nothing is left
// running when it fails.
func launch(ctx context.Context, env *Env, rec Record, dev Devices, tap *os.File) (*instance, error) {
	dir := InstanceDir(env.RunDir, rec.Spec.Name, rec.Spec.Node)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := clearInstance(dir); err != nil {
		return nil, fmt.Errorf("clearing %s: %w", dir, err)
	}
	if n := len(filepath.Join(dir, migrateSock)); n > 107 {
		return nil, fmt.Errorf("run_dir: the socket paths under %s are %d bytes, more than unix sockets allow (107): choose a shorter run_dir", dir, n)
	}
	rec.Args = rec.Machine.Args(dir, rec.Incoming)
	i := newInstance(dir)
	i.rec, i.dev, i.log = rec, dev, env.Log.With("vm", rec.Spec.Name, "node", rec.Spec.Node)
	if err := i.save(); err != nil {
		return nil, err
	}
	// QEMU keeps an existing file's mode: the console stays private.
	if err := os.WriteFile(filepath.Join(dir, serialLog), nil, 0o600); err != nil {
		return nil, err
	}
	started := time.Now()
	// With -daemonize the command returns once QEMU is set up (sockets
	// listening, pid file written), leaving it in a session of its own
	// that outlives the plugin.
	cmd := exec.CommandContext(ctx, rec.Args[0], rec.Args[1:]...)
	if tap != nil {
		cmd.ExtraFiles = []*os.File{tap} // descriptor tapFD
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		// Cancelled after the fork, a daemon may run that nothing records.
		if pid, perr := readPID(dir); perr == nil {
			if p, aerr := proc.Attach(pid, rec.Args, 0); aerr == nil {
				_ = p.Signal(unix.SIGKILL)
				p.Close()
			}
		}
		_ = clearInstance(dir)
		return nil, fmt.Errorf("starting %s: %v: %s", rec.Machine.QEMU, err, out)
	}
	if err := i.connect(ctx, env, 0); err != nil {
		i.destroy(env)
		return nil, err
	}
	i.log.Info("QEMU started", "pid", i.handle.PID, "dir", dir, "ms", time.Since(started).Milliseconds())
	return i, nil
}

// attach reconnects to the QEMU of an existing instance directory.
func attach(ctx context.Context, env *Env, dir string) (*instance, error) {
	i := newInstance(dir)
	if err := readJSON(filepath.Join(dir, specFile), &i.rec); err != nil {
		return nil, err
	}
	if err := readJSON(filepath.Join(dir, devicesFile), &i.dev); err != nil {
		return nil, err
	}
	i.log = env.Log.With("vm", i.rec.Spec.Name, "node", i.rec.Spec.Node)
	var h Handle
	if err := readJSON(filepath.Join(dir, handleFile), &h); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, attachTimeout)
	defer cancel()
	if err := i.connect(ctx, env, h.StartTime); err != nil {
		i.detach()
		return nil, err
	}
	return i, nil
}

// connect pins the instance's process (checking it is the recorded QEMU),
// records its handle, and opens QMP and the agent channel.
func (i *instance) connect(ctx context.Context, env *Env, startTime uint64) error {
	pid, err := readPID(i.dir)
	if err != nil {
		return fmt.Errorf("QEMU's pid file: %w", err)
	}
	if i.proc, err = proc.Attach(pid, i.rec.Args, startTime); err != nil {
		return fmt.Errorf("QEMU is gone: %w", err)
	}
	if startTime == 0 {
		if startTime, err = proc.StartTime(pid); err != nil {
			return err
		}
	}
	i.handle = Handle{PID: pid, Dir: i.dir, StartTime: startTime}
	if err := writeJSON(filepath.Join(i.dir, handleFile), i.handle); err != nil {
		return err
	}
	if env.CPU != nil {
		if err := env.CPU.Limit(i.cgroupName(), pid, i.dev.Size.VCPUMilli); err != nil {
			return err
		}
	}
	if i.qmp, err = qmp.Dial(ctx, filepath.Join(i.dir, qmpSocket), i.log.Named("qmp")); err != nil {
		return err
	}
	name := i.rec.Spec.Name
	i.agent, err = agentconn.Dial(ctx, filepath.Join(i.dir, agentSocket), agentconn.Silence, func(m *agentproto.Message) { env.Reporter.Agent(name, m) }, i.log.Named("agent"))
	return err
}

// monitor is the QMP connection, reopened if a command timed out on it.
func (i *instance) monitor(ctx context.Context) (*qmp.Monitor, error) {
	select {
	case <-i.qmp.Done():
	default:
		return i.qmp, nil
	}
	if !i.proc.Alive() {
		return nil, fmt.Errorf("QEMU (pid %d) has exited", i.handle.PID)
	}
	m, err := qmp.Dial(ctx, filepath.Join(i.dir, qmpSocket), i.log.Named("qmp"))
	if err != nil {
		return nil, err
	}
	i.qmp = m
	return m, nil
}

// saveDevices records dev after a change, before anything relies on it.
func (i *instance) saveDevices() error {
	return writeJSON(filepath.Join(i.dir, devicesFile), i.dev)
}

func (i *instance) save() error {
	if err := writeJSON(filepath.Join(i.dir, specFile), i.rec); err != nil {
		return err
	}
	return i.saveDevices()
}

// detach closes the plugin's connections; QEMU runs on.
func (i *instance) detach() {
	i.detachedOnce.Do(func() { close(i.detached) })
	if i.agent != nil {
		i.agent.Close()
	}
	if i.qmp != nil {
		i.qmp.Close()
	}
	if i.proc != nil {
		i.proc.Close()
	}
}

// shutdown asks the guest to power off, then QEMU to quit once grace has
// passed (the guest's init may ignore ACPI), then kills it. It returns once
// the process is gone.
func (i *instance) shutdown(ctx context.Context, grace time.Duration) error {
	// The guest agent powers off cleanly and at once; ACPI's power button
	// is the fallback for a guest whose agent does not answer.
	if i.agent != nil && grace > 0 {
		rctx, cancel := context.WithTimeout(ctx, min(grace, time.Second))
		_, err := i.agent.Request(rctx, agentproto.Message{Op: agentproto.OpShutdown})
		cancel()
		if err != nil {
			i.log.Debug("agent shutdown", "error", err)
		}
		if i.waitExit(ctx, grace) {
			return nil
		}
	}
	if mon, err := i.monitor(ctx); err == nil && grace > 0 {
		if err := mon.Execute(ctx, "system_powerdown", nil, nil); err != nil {
			i.log.Debug("system_powerdown", "error", err)
		} else if i.waitExit(ctx, grace) {
			return nil
		}
	}
	if mon, err := i.monitor(ctx); err == nil {
		if err := mon.Execute(ctx, "quit", nil, nil); err != nil && !errors.Is(err, qmp.ErrClosed) {
			i.log.Debug("quit", "error", err)
		} else if i.waitExit(ctx, killTimeout) {
			return nil
		}
	}
	return i.kill(ctx)
}

// kill SIGKILLs QEMU and waits for it to go.
func (i *instance) kill(ctx context.Context) error {
	if err := i.proc.Signal(unix.SIGKILL); err != nil {
		return fmt.Errorf("killing QEMU (pid %d): %w", i.handle.PID, err)
	}
	if !i.waitExit(ctx, killTimeout) {
		return fmt.Errorf("QEMU (pid %d) still runs %v after SIGKILL", i.handle.PID, killTimeout)
	}
	return nil
}

func (i *instance) waitExit(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-i.proc.Exited():
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// destroy kills a QEMU that is not (or no longer) the VM and releases it.
func (i *instance) destroy(env *Env) {
	if i.proc != nil {
		if err := i.kill(context.Background()); err != nil {
			i.log.Error("killing QEMU", "error", err)
		}
	}
	i.release(env)
}

// release clears an exited instance: its directory but for serial.log, and
// its CPU group.
func (i *instance) release(env *Env) {
	i.detach()
	if err := clearInstance(i.dir); err != nil {
		i.log.Warn("clearing the instance directory", "error", err)
	}
	if env.CPU != nil {
		if err := env.CPU.Remove(i.cgroupName()); err != nil {
			i.log.Warn("removing the CPU group", "error", err)
		}
	}
}
