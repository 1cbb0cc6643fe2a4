package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vertigo-autoscaler/vertigo/host/internal/procfs"
)

// procSample is one process's footprint at one instant.
type procSample struct {
	PID  int
	Name string
	RSS  uint64 // bytes
	// CPUTicks is user plus system time, in clock ticks.
	CPUTicks uint64
}

// sampleTree samples pid and its direct children (the host and its
// plugins). A child that exits between being listed and being read is left
// out; the host itself must be readable.
func sampleTree(procRoot string, pid int) ([]procSample, error) {
	host, err := sampleProc(procRoot, pid)
	if err != nil {
		return nil, err
	}
	kids, err := children(procRoot, pid)
	if err != nil {
		return nil, err
	}
	samples := []procSample{host}
	for _, kid := range kids {
		if s, err := sampleProc(procRoot, kid); err == nil {
			samples = append(samples, s)
		}
	}
	return samples, nil
}

func sampleProc(procRoot string, pid int) (procSample, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return procSample{}, err
	}
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return procSample{}, err
	}
	name, rss, err := parseStatus(string(status))
	if err != nil {
		return procSample{}, fmt.Errorf("%s/status: %w", dir, err)
	}
	ticks, err := procfs.CPUTicks(string(stat))
	if err != nil {
		return procSample{}, fmt.Errorf("%s/stat: %w", dir, err)
	}
	return procSample{PID: pid, Name: name, RSS: rss, CPUTicks: ticks}, nil
}

// children lists pid's children from every one of its threads, since a
// child belongs to the thread that forked it.
func children(procRoot string, pid int) ([]int, error) {
	files, err := filepath.Glob(filepath.Join(procRoot, strconv.Itoa(pid), "task", "*", "children"))
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue // the thread exited
		}
		ps, err := parsePIDs(string(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		pids = append(pids, ps...)
	}
	slices.Sort(pids)
	return slices.Compact(pids), nil
}

// parseStatus reads the Name and VmRSS lines of /proc/PID/status.
func parseStatus(status string) (name string, rss uint64, err error) {
	var haveRSS bool
	for line := range strings.Lines(status) {
		key, value, _ := strings.Cut(strings.TrimSpace(line), ":")
		value = strings.TrimSpace(value)
		switch key {
		case "Name":
			name = value
		case "VmRSS":
			kb, ok := strings.CutSuffix(value, " kB")
			if !ok {
				return "", 0, fmt.Errorf("VmRSS %q: want a number of kB", value)
			}
			n, err := strconv.ParseUint(strings.TrimSpace(kb), 10, 64)
			if err != nil {
				return "", 0, fmt.Errorf("VmRSS %q: %w", value, err)
			}
			rss, haveRSS = n*1024, true
		}
	}
	if !haveRSS {
		return "", 0, fmt.Errorf("no VmRSS line (a zombie or a kernel thread?)")
	}
	return name, rss, nil
}

// parsePIDs parses a space-separated list of process ids.
func parsePIDs(s string) ([]int, error) {
	var pids []int
	for _, f := range strings.Fields(s) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("bad pid %q", f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}
