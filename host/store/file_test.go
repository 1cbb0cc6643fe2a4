package store

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/model"
)

func openFile(t *testing.T, dir string) *File {
	t.Helper()
	f, err := OpenFile(dir)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, f.Close()) })
	return f
}

func stateDir(t *testing.T) string { return filepath.Join(t.TempDir(), "state") }

func TestFileSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir := stateDir(t)
	f, err := OpenFile(dir)
	require.NoError(t, err)
	node, err := f.PutNode(ctx, testNode("node-a"))
	require.NoError(t, err)
	kept, err := f.PutVM(ctx, testVM("pg-1"))
	require.NoError(t, err)
	gone, err := f.PutVM(ctx, testVM("pg-2"))
	require.NoError(t, err)
	// Deleting the newest object leaves the last revision in no object file.
	require.NoError(t, f.DeleteVM(ctx, "pg-2", gone.Version))
	require.NoError(t, f.Close())

	f = openFile(t, dir)
	nodes, err := f.ListNodes(ctx)
	require.NoError(t, err)
	require.Equal(t, []model.Node{node}, nodes)
	vms, err := f.ListVMs(ctx)
	require.NoError(t, err)
	require.Equal(t, []model.VM{kept}, vms)
	again, err := f.PutVM(ctx, testVM("pg-2"))
	require.NoError(t, err)
	require.Equal(t, gone.Version+2, again.Version, "revisions continue after the deletion's")
	_, err = f.PutVM(ctx, gone)
	require.ErrorIs(t, err, ErrConflict)
}

func TestFileModes(t *testing.T) {
	dir := stateDir(t)
	f := openFile(t, dir)
	_, err := f.PutVM(context.Background(), testVM("pg-1"))
	require.NoError(t, err)
	_, err = f.PutNode(context.Background(), testNode("node-a"))
	require.NoError(t, err)
	require.NoError(t, f.DeleteNode(context.Background(), "node-a", 0))
	for path, want := range map[string]fs.FileMode{
		dir:                                 fs.ModeDir | 0o700,
		filepath.Join(dir, "nodes"):         fs.ModeDir | 0o700,
		filepath.Join(dir, "vms"):           fs.ModeDir | 0o700,
		filepath.Join(dir, "vms/pg-1.json"): 0o600,
		filepath.Join(dir, "LOCK"):          0o600,
		filepath.Join(dir, "REVISION"):      0o600,
	} {
		info, err := os.Stat(path)
		require.NoError(t, err)
		require.Equal(t, want, info.Mode(), path)
	}
}

// TestFileDurableBeforeEvent: a watcher that hears of a change can rely on
// it being on disk.
func TestFileDurableBeforeEvent(t *testing.T) {
	dir := stateDir(t)
	f := openFile(t, dir)
	events := watch(t, f)
	vm, err := f.PutVM(context.Background(), testVM("pg-1"))
	require.NoError(t, err)
	for range 20 {
		vm, err = f.PutVM(context.Background(), vm)
		require.NoError(t, err)
	}
	for range 21 {
		ev := next(t, events)
		var onDisk model.VM
		require.NoError(t, readJSON(filepath.Join(dir, "vms/pg-1.json"), &onDisk))
		require.GreaterOrEqual(t, onDisk.Version, ev.VM.Version)
	}
}

// TestFileFailedWriteChangesNothing: the disk is written first, so a write
// it refuses leaves the cache and the watchers as they were.
func TestFileFailedWriteChangesNothing(t *testing.T) {
	ctx := context.Background()
	dir := stateDir(t)
	f := openFile(t, dir)
	events := watch(t, f)
	vm, err := f.PutVM(ctx, testVM("pg-1"))
	require.NoError(t, err)
	require.Equal(t, vm.Version, next(t, events).VM.Version)

	// A file where the directory was fails writes even for root.
	vmsDir := filepath.Join(dir, "vms")
	require.NoError(t, os.RemoveAll(vmsDir))
	require.NoError(t, os.WriteFile(vmsDir, nil, 0o600))
	changed := vm
	changed.Phase = model.PhaseFailed
	_, err = f.PutVM(ctx, changed)
	require.ErrorContains(t, err, `vm "pg-1"`)
	require.ErrorContains(t, f.DeleteVM(ctx, "pg-1", vm.Version), "not a directory")

	got, err := f.GetVM(ctx, "pg-1")
	require.NoError(t, err)
	require.Equal(t, vm, got)
	node, err := f.PutNode(ctx, testNode("node-a"))
	require.NoError(t, err)
	require.Equal(t, &node, next(t, events).Node, "no event for the failed writes")
}

func TestFileRefusesWhatItCannotRead(t *testing.T) {
	valid, err := json.Marshal(model.VM{Name: "pg-1", Version: 1})
	require.NoError(t, err)
	for _, tc := range []struct {
		name, file, content, want string
	}{
		{"corrupt json", "vms/pg-1.json", `{"name": "pg-1", "version": `, "unexpected EOF"},
		{"bad syntax", "vms/pg-1.json", `{"name": pg-1}`, "invalid character 'p'"},
		{"wrong type", "nodes/node-a.json", `{"name": "node-a", "watermark": "high", "version": 1}`, "cannot unmarshal string"},
		{"unknown field", "vms/pg-1.json", `{"name": "pg-1", "cpus": 4, "version": 1}`, `unknown field "cpus"`},
		{"trailing data", "vms/pg-1.json", string(valid) + "{}", "unexpected data after the JSON object"},
		{"name mismatch", "vms/pg-2.json", string(valid), `holds vm "pg-1", want "pg-2"`},
		{"no version", "vms/pg-1.json", `{"name": "pg-1"}`, "version: must be > 0"},
		{"not ours", "vms/pg-1.json.bak", string(valid), "not a vm file this store wrote"},
		{"bad name", "vms/PG-1.json", string(valid), "not a vm file this store wrote"},
		{"corrupt revision", "REVISION", "seven", `parsing "seven"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := stateDir(t)
			f, err := OpenFile(dir)
			require.NoError(t, err)
			require.NoError(t, f.Close())
			path := filepath.Join(dir, tc.file)
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))

			_, err = OpenFile(dir)
			require.ErrorContains(t, err, path)
			require.ErrorContains(t, err, tc.want)
			content, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, tc.content, string(content), "the file is left as it was")

			require.NoError(t, os.Remove(path))
			openFile(t, dir) // the failed open released the lock
		})
	}
}

// TestFileCrashBeforeRename leaves what a write that crashed between its
// temp file and its rename leaves: the previous content must win and the
// temp file must go.
func TestFileCrashBeforeRename(t *testing.T) {
	ctx := context.Background()
	dir := stateDir(t)
	f, err := OpenFile(dir)
	require.NoError(t, err)
	vm, err := f.PutVM(ctx, testVM("pg-1"))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	strays := []string{
		filepath.Join(dir, "vms", tempPrefix+"pg-1.json-123"), // an update
		filepath.Join(dir, "vms", tempPrefix+"pg-2.json-456"), // a create
		filepath.Join(dir, "nodes", tempPrefix+"node-a.json-7"),
		filepath.Join(dir, tempPrefix+"REVISION-8"),
	}
	for _, path := range strays {
		require.NoError(t, os.WriteFile(path, []byte(`{"name": "pg-1", "phase": "fail`), 0o600))
	}

	f = openFile(t, dir)
	vms, err := f.ListVMs(ctx)
	require.NoError(t, err)
	require.Equal(t, []model.VM{vm}, vms)
	nodes, err := f.ListNodes(ctx)
	require.NoError(t, err)
	require.Empty(t, nodes)
	for _, path := range strays {
		require.NoFileExists(t, path)
	}
}

func TestFileLock(t *testing.T) {
	dir := stateDir(t)
	first, err := OpenFile(dir)
	require.NoError(t, err)
	pid, err := os.ReadFile(filepath.Join(dir, "LOCK"))
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(os.Getpid())+"\n", string(pid))

	_, err = OpenFile(dir)
	require.ErrorContains(t, err, fmt.Sprintf("state directory %s is in use by pid %d", dir, os.Getpid()))
	_, err = first.PutVM(context.Background(), testVM("pg-1"))
	require.NoError(t, err, "a refused second open leaves the first working")

	require.NoError(t, first.Close())
	second := openFile(t, dir)
	_, err = second.GetVM(context.Background(), "pg-1")
	require.NoError(t, err)
}

func BenchmarkFilePutVM(b *testing.B) {
	f, err := OpenFile(filepath.Join(b.TempDir(), "state"))
	require.NoError(b, err)
	defer f.Close()
	ctx := context.Background()
	vm, err := f.PutVM(ctx, testVM("pg-1"))
	require.NoError(b, err)
	for b.Loop() {
		if vm, err = f.PutVM(ctx, vm); err != nil {
			b.Fatal(err)
		}
	}
}
