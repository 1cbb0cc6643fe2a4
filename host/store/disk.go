package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

const (
	// tempPrefix marks a write in progress. Object names cannot start with
	// a dot, so a temp file never shadows an object.
	tempPrefix = ".tmp-"
	// revisionFile keeps the revision of the last deletion, the one
	// revision that no object file records.
	revisionFile = "REVISION"
)

// disk keeps one JSON file per object under dir/<kind dir>/NAME.json.
type disk struct{ dir string }

func (d disk) write(kindDir, name string, obj any) error {
	data, err := json.MarshalIndent(obj, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(d.dir, kindDir), name+".json", append(data, '\n'))
}

func (d disk) remove(kindDir, name string, rev uint64) error {
	if err := writeAtomic(d.dir, revisionFile, []byte(strconv.FormatUint(rev, 10)+"\n")); err != nil {
		return err
	}
	dir := filepath.Join(d.dir, kindDir)
	if err := os.Remove(filepath.Join(dir, name+".json")); err != nil {
		return err
	}
	return syncDir(dir)
}

// writeAtomic replaces dir/name so that after a crash it holds either the
// old or the new content in full. If the final directory sync fails the
// new content may or may not survive a crash, as for any write that
// returned an error.
func writeAtomic(dir, name string, data []byte) (err error) {
	tmp, err := os.CreateTemp(dir, tempPrefix+name+"-*") // mode 0600
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// removeTemps deletes the leftovers of writes that crashed before their
// rename. Such a write was never acknowledged, and the file it was
// replacing is intact, so nothing the store promised is lost.
func removeTemps(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// load reads every object and the revision to continue from: the highest
// of the last deletion and every object's version.
func (d disk) load(c *core) error {
	for _, dir := range []string{d.dir, filepath.Join(d.dir, nodeKind.dir), filepath.Join(d.dir, vmKind.dir)} {
		if err := removeTemps(dir); err != nil {
			return err
		}
	}
	rev, err := d.readRevision()
	if err != nil {
		return err
	}
	nodes, nodesRev, err := loadKind(d, &nodeKind)
	if err != nil {
		return err
	}
	vms, vmsRev, err := loadKind(d, &vmKind)
	if err != nil {
		return err
	}
	c.init(d, max(rev, nodesRev, vmsRev), nodes, vms)
	return nil
}

func (d disk) readRevision() (uint64, error) {
	path := filepath.Join(d.dir, revisionFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	rev, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return rev, nil
}

// loadKind refuses anything it cannot account for, rather than start
// without an object an operator or an earlier host put there.
func loadKind[T any](d disk, k *kind[T]) (map[string]T, uint64, error) {
	dir := filepath.Join(d.dir, k.dir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, err
	}
	objs := make(map[string]T, len(entries))
	var maxVersion uint64
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		name, isJSON := strings.CutSuffix(e.Name(), ".json")
		if !isJSON || !e.Type().IsRegular() || validateName(k.name, name) != nil {
			return nil, 0, fmt.Errorf("%s: not a %s file this store wrote (want NAME.json); move it out of %s", path, k.name, dir)
		}
		var obj T
		if err := readJSON(path, &obj); err != nil {
			return nil, 0, fmt.Errorf("%s: %w", path, err)
		}
		got, version := k.ident(&obj)
		if got != name {
			return nil, 0, fmt.Errorf("%s: holds %s %q, want %q", path, k.name, got, name)
		}
		if *version == 0 {
			return nil, 0, fmt.Errorf("%s: version: must be > 0", path)
		}
		objs[name] = obj
		maxVersion = max(maxVersion, *version)
	}
	return objs, maxVersion, nil
}

// readJSON refuses unknown fields and trailing data: a field this host
// does not know would be dropped by its next write.
func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON object")
	}
	return nil
}
