package vm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Record is an instance's spec.json: enough to check that a pid is still
// this QEMU and to start a migration destination like it. Written before
// QEMU starts, so a crash at any point leaves a directory that says what it
// was.
type Record struct {
	Spec    Spec      `json:"spec"`
	Machine Machine   `json:"machine"`
	Args    []string  `json:"args"`
	Created time.Time `json:"created"`
	// Incoming marks a migration destination that has not taken over yet:
	// if the plugin dies there, the source is still the VM.
	Incoming bool `json:"incoming,omitempty"`
}

// Devices is devices.json: what changed since boot, kept current after
// every step so that a destination can be given the same devices.
type Devices struct {
	CPUs      []CPUSlot `json:"cpus"`
	Requested uint64    `json:"requested_memory"`
	// Size is the size last applied (the spec's at boot).
	Size Size `json:"size"`
}

// Handle is the opaque handle the host keeps: where the instance lives and
// which process it is.
type Handle struct {
	PID       int    `json:"pid"`
	Dir       string `json:"dir"`
	StartTime uint64 `json:"start_time"`
}

// DecodeHandle parses a handle from the host.
func DecodeHandle(b []byte) (Handle, error) {
	var h Handle
	if err := json.Unmarshal(b, &h); err != nil {
		return h, invalid("handle: %v", err)
	}
	if h.Dir == "" {
		return h, invalid("handle.dir: must not be empty")
	}
	return h, nil
}

// InstanceDir is where the instance of a VM on a node lives: a migration's
// destination is another node, so another directory.
func InstanceDir(runDir, name, node string) string {
	return filepath.Join(runDir, name+"@"+node)
}

// writeJSON replaces path atomically, readable by its owner only.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func readPID(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, pidFile))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", filepath.Join(dir, pidFile), err)
	}
	return pid, nil
}

// clearInstance removes an instance's state and keeps serial.log, the
// guest's console, for whoever investigates what happened.
func clearInstance(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if e.Name() == serialLog {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// serialTail is the end of the guest's console, for error messages.
func serialTail(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, serialLog))
	if err != nil || len(b) == 0 {
		return "(serial.log is empty)"
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return "serial.log ends: " + string(bytes.Join(lines, []byte(" | ")))
}
