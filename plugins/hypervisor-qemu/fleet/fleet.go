// Package fleet is the plugin's set of VMs: it finds the ones that outlived
// a previous plugin process in the run directory, starts and stops VMs
// idempotently by name, and checks nodes against the ones configured.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/vm"
)

// ErrNotFound is returned for a VM the plugin does not know.
var ErrNotFound = errors.New("no such VM")

// Fleet is safe for concurrent use.
type Fleet struct {
	env   *vm.Env
	nodes []string

	mu  sync.Mutex
	vms map[string]*vm.VM
}

// New is an empty fleet over env; nodes are the logical nodes this machine
// hosts.
func New(env *vm.Env, nodes []string) *Fleet {
	return &Fleet{env: env, nodes: nodes, vms: map[string]*vm.VM{}}
}

// CheckNode refuses a node this plugin does not host.
func (f *Fleet) CheckNode(field, node string) error {
	if !slices.Contains(f.nodes, node) {
		return fmt.Errorf("%w: %s: unknown node %q (this plugin hosts %s)", vm.ErrInvalid, field, node, strings.Join(f.nodes, ", "))
	}
	return nil
}

// instanceDirs groups the run directory's instance directories by VM name.
func (f *Fleet) instanceDirs() (map[string][]string, error) {
	entries, err := os.ReadDir(f.env.RunDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	dirs := map[string][]string{}
	for _, e := range entries {
		name, _, ok := strings.Cut(e.Name(), "@")
		dir := filepath.Join(f.env.RunDir, e.Name())
		if !ok || !e.IsDir() {
			continue
		}
		// Only serial.log is left of a stopped VM.
		if _, err := os.Stat(filepath.Join(dir, "spec.json")); err != nil {
			continue
		}
		dirs[name] = append(dirs[name], dir)
	}
	return dirs, nil
}

// RecoverAll re-attaches to every VM in the run directory that the fleet
// does not know yet. VMs whose QEMU is gone are kept as Failed.
func (f *Fleet) RecoverAll(ctx context.Context) error {
	dirs, err := f.instanceDirs()
	if err != nil {
		return fmt.Errorf("scanning run_dir %s: %w", f.env.RunDir, err)
	}
	names := make([]string, 0, len(dirs))
	for name := range dirs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		f.mu.Lock()
		_, known := f.vms[name]
		f.mu.Unlock()
		if known {
			continue
		}
		v := vm.Recover(ctx, f.env, name, dirs[name])
		st := v.Status()
		f.env.Log.Info("found a VM in run_dir", "vm", name, "state", st.State, "node", st.Node, "message", st.Message)
		f.mu.Lock()
		if _, known := f.vms[name]; known {
			f.mu.Unlock()
			v.Detach()
			continue
		}
		f.vms[name] = v
		f.mu.Unlock()
	}
	return nil
}

// Recover finds one VM: the one known, or the one in the run directory.
// The handle only has to be well formed: the VM may have moved since it was
// issued, and its directories say where it is now.
func (f *Fleet) Recover(ctx context.Context, name string, handle []byte) (vm.Status, error) {
	if err := vm.ValidateName("spec.name", name); err != nil {
		return vm.Status{}, err
	}
	if len(handle) > 0 {
		if _, err := vm.DecodeHandle(handle); err != nil {
			return vm.Status{}, err
		}
	}
	if v, err := f.Get(name); err == nil {
		return v.Status(), nil
	}
	if err := f.RecoverAll(ctx); err != nil {
		return vm.Status{}, err
	}
	if v, err := f.Get(name); err == nil {
		return v.Status(), nil
	}
	return vm.Status{Name: name, State: vm.Failed, Message: fmt.Sprintf("no instance of %s under run_dir %s", name, f.env.RunDir)}, nil
}

// Start starts spec's VM, or returns it as it is when it already runs. A
// failed VM of that name is cleared and started afresh.
func (f *Fleet) Start(ctx context.Context, spec vm.Spec) (vm.Status, error) {
	if err := spec.Validate(); err != nil {
		return vm.Status{}, err
	}
	if err := f.CheckNode("spec.node", spec.Node); err != nil {
		return vm.Status{}, err
	}
	f.mu.Lock()
	old := f.vms[spec.Name]
	if old != nil {
		if st := old.Status(); st.State != vm.Failed && st.State != vm.Stopped {
			f.mu.Unlock()
			return st, nil
		}
	}
	v := vm.New(f.env, spec)
	f.vms[spec.Name] = v
	f.mu.Unlock()
	if old != nil {
		// Halted, not stopped: the VM restarts with the disk it had.
		if err := old.Halt(ctx, 0); err != nil {
			f.forget(v)
			return vm.Status{}, fmt.Errorf("clearing the failed VM %s before starting it again: %w", spec.Name, err)
		}
	}
	if err := v.Start(ctx, spec); err != nil {
		f.forget(v)
		return vm.Status{}, err
	}
	return v.Status(), nil
}

// forget drops v if it is still the VM of its name.
func (f *Fleet) forget(v *vm.VM) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.vms[v.Name()] == v {
		delete(f.vms, v.Name())
	}
}

// Get is the named VM.
func (f *Fleet) Get(name string) (*vm.VM, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.vms[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return v, nil
}

// Stop stops the named VM for good and forgets it. An unknown VM is
// already stopped; a disk it left (its start failed half-way) is deleted.
func (f *Fleet) Stop(ctx context.Context, name string, grace time.Duration) error {
	v, err := f.Get(name)
	if errors.Is(err, ErrNotFound) {
		if err := vm.ValidateName("name", name); err != nil {
			return err
		}
		return vm.RemoveDisk(f.env.RunDir, name)
	}
	if err := v.Stop(ctx, grace); err != nil {
		return err
	}
	f.forget(v)
	return nil
}

// List is every known VM, by name.
func (f *Fleet) List() []vm.Status {
	f.mu.Lock()
	vms := make([]*vm.VM, 0, len(f.vms))
	for _, v := range f.vms {
		vms = append(vms, v)
	}
	f.mu.Unlock()
	out := make([]vm.Status, len(vms))
	for i, v := range vms {
		out[i] = v.Status()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Detach lets go of every VM; their QEMUs run on for the next plugin.
func (f *Fleet) Detach() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, v := range f.vms {
		v.Detach()
		delete(f.vms, name)
	}
}
