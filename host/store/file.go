package store

import (
	"fmt"
	"os"
	"path/filepath"
)

// File is the embedded Store: objects are kept in memory, so reads never
// touch the disk, and every change is written to disk before it is cached
// and announced to watchers.
type File struct {
	core
	lock *os.File
}

// OpenFile opens (creating 0700 dirs) a file store under dir: one JSON file per object
// (dir/nodes/NAME.json, dir/vms/NAME.json), written atomically (temp file + fsync + rename +
// fsync of the directory), mode 0600. Names must be safe file names ([a-z0-9][a-z0-9._-]*, max 63):
// others are refused with a clear error. A corrupt file is an error that names the file and the
// JSON error (the host must refuse to start rather than silently drop a VM) — and loses nothing:
// the corrupt file is left in place.
//
// The store holds an exclusive lock on dir/LOCK until Close, so that two
// hosts never share a state directory.
func OpenFile(dir string) (*File, error) {
	for _, d := range []string{dir, filepath.Join(dir, nodeKind.dir), filepath.Join(dir, vmKind.dir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("state directory: %w", err)
		}
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	f := &File{lock: lock}
	if err := (disk{dir: dir}).load(&f.core); err != nil {
		lock.Close()
		return nil, fmt.Errorf("state directory %s: %w", dir, err)
	}
	return f, nil
}

// Close ends the watchers and releases the state directory.
func (f *File) Close() error {
	if !f.shut() {
		return nil
	}
	return f.lock.Close()
}
