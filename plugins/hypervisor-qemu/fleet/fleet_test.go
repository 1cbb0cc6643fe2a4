package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/vm"
)

// writeInstance lays out an instance directory as a plugin would have left
// it, for a QEMU with pid.
func writeInstance(t *testing.T, run, name string, pid int) string {
	t.Helper()
	dir := vm.InstanceDir(run, name, "node-a")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	rec := vm.Record{
		Spec: vm.Spec{Name: name, Node: "node-a", Size: vm.Size{VCPUMilli: 1000, MemoryBytes: 512 << 20}},
		Args: []string{"qemu-system-x86_64", "-name", name},
	}
	for file, v := range map[string]any{"spec.json": rec, "devices.json": vm.Devices{Size: rec.Spec.Size}} {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, file), b, 0o600))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pid"), fmt.Appendf(nil, "%d\n", pid), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "serial.log"), []byte("[    0.000000] Linux version 6.1\nKernel panic\n"), 0o600))
	return dir
}

func testFleet(run string) *Fleet {
	log := hclog.NewNullLogger()
	return New(&vm.Env{RunDir: run, Log: log, Reporter: NewHub(log)}, []string{"node-a", "node-b"})
}

// A VM whose QEMU is gone is reported, with the reason, and never confused
// with an unrelated process that now has its pid.
func TestRecoveryReportsGoneVMsAsFailed(t *testing.T) {
	run := t.TempDir()
	other := exec.Command("sleep", "60")
	require.NoError(t, other.Start())
	t.Cleanup(func() {
		_ = other.Process.Kill()
		_ = other.Wait()
	})
	reused := writeInstance(t, run, "reused", other.Process.Pid)
	exited := exec.Command("true")
	require.NoError(t, exited.Run())
	writeInstance(t, run, "gone", exited.Process.Pid)
	// A stopped VM leaves its console only: not a VM any more.
	require.NoError(t, os.MkdirAll(filepath.Join(run, "old@node-a"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(run, "old@node-a", "serial.log"), nil, 0o600))

	f := testFleet(run)
	require.NoError(t, f.RecoverAll(context.Background()))
	list := f.List()
	require.Len(t, list, 2)
	require.Equal(t, "gone", list[0].Name)
	require.Equal(t, vm.Failed, list[0].State)
	require.Contains(t, list[0].Message, "QEMU is gone")
	require.Equal(t, "reused", list[1].Name)
	require.Equal(t, vm.Failed, list[1].State)
	require.Contains(t, list[1].Message, "pid was reused")
	require.Equal(t, "node-a", list[1].Node)
	require.NoError(t, syscall.Kill(other.Process.Pid, 0), "the unrelated process is left alone")

	// Recovering again finds nothing new; asking for one by name answers.
	require.NoError(t, f.RecoverAll(context.Background()))
	require.Len(t, f.List(), 2)
	st, err := f.Recover(context.Background(), "reused", nil)
	require.NoError(t, err)
	require.Equal(t, vm.Failed, st.State)
	st, err = f.Recover(context.Background(), "never", []byte(`{"pid":1,"dir":"/x"}`))
	require.NoError(t, err)
	require.Equal(t, vm.Failed, st.State)
	require.Contains(t, st.Message, "no instance of never")
	_, err = f.Recover(context.Background(), "never", []byte(`not json`))
	require.ErrorIs(t, err, vm.ErrInvalid)

	// Stopping a failed VM clears its state and keeps its console.
	require.NoError(t, f.Stop(context.Background(), "reused", time.Second))
	require.NoFileExists(t, filepath.Join(reused, "spec.json"))
	require.NoFileExists(t, filepath.Join(reused, "pid"))
	require.FileExists(t, filepath.Join(reused, "serial.log"))
	require.Len(t, f.List(), 1)
	require.NoError(t, syscall.Kill(other.Process.Pid, 0), "stopping a VM never signals a stranger")
}

func TestStartChecksTheSpecAndTheNode(t *testing.T) {
	f := testFleet(t.TempDir())
	spec := vm.Spec{Name: "a", Node: "node-c", Size: vm.Size{VCPUMilli: 1000, MemoryBytes: 1 << 30},
		Bounds: vm.Bounds{Min: vm.Size{VCPUMilli: 1000, MemoryBytes: 1 << 30}, Max: vm.Size{VCPUMilli: 1000, MemoryBytes: 1 << 30}}}
	_, err := f.Start(context.Background(), spec)
	require.ErrorIs(t, err, vm.ErrInvalid)
	require.ErrorContains(t, err, `spec.node: unknown node "node-c" (this plugin hosts node-a, node-b)`)
	spec.Name = ""
	_, err = f.Start(context.Background(), spec)
	require.ErrorContains(t, err, "spec.name")
	require.Empty(t, f.List())
}
