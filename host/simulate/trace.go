package simulate

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// Sample is one row of a trace: what a VM used over the interval that ends
// at T (seconds from the trace's start).
type Sample struct {
	T   int64
	CPU float64 // cores
	// Mem is the used memory in bytes; 0 when the row has none (empty, or
	// 0: in the Bitbrains trace a zero is a counter artefact, not a reading).
	Mem uint64
}

// VMTrace is one VM's rows, oldest first.
type VMTrace struct {
	ID      string
	Samples []Sample
}

// Trace is a parsed trace, VMs in the order of the file.
type Trace struct {
	VMs []VMTrace
	// CPUColumn is the header's name for the CPU column.
	CPUColumn string
}

const (
	columnCores   = "cpu_cores_used"
	columnPercent = "cpu_pct"
)

// ParseOptions say how to read a trace.
type ParseOptions struct {
	// VMMaxVCPUs is what cpu_pct 100 means in cores; required for a trace
	// whose CPU column is cpu_pct, ignored otherwise.
	VMMaxVCPUs float64
}

// OpenTrace reads a trace file, gzip-compressed or not.
func OpenTrace(path string, opts ParseOptions) (*Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr, err := ParseTrace(f, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return tr, nil
}

// ParseTrace reads a trace: plain or gzip CSV with the header
// vm_id,t_seconds,<cpu_cores_used|cpu_pct>,mem_bytes_used[,ignored...],
// rows grouped by VM and in time order within a VM. Errors name the line.
func ParseTrace(r io.Reader, opts ParseOptions) (*Trace, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer gz.Close()
		br = bufio.NewReaderSize(gz, 1<<16)
	}
	sc := bufio.NewScanner(br)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, err
		}
		return nil, errors.New("line 1: empty trace, want a header")
	}
	tr := &Trace{}
	scale, err := tr.header(sc.Text(), opts)
	if err != nil {
		return nil, fmt.Errorf("line 1: %w", err)
	}
	seen := map[string]bool{}
	line := 1
	for sc.Scan() {
		line++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		if err := tr.row(sc.Text(), scale, seen); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("after line %d: %w", line, err)
	}
	if len(tr.VMs) == 0 {
		return nil, errors.New("no rows after the header")
	}
	return tr, nil
}

// header checks the column names and returns the factor that turns the CPU
// column into cores.
func (tr *Trace) header(h string, opts ParseOptions) (float64, error) {
	cols := strings.Split(strings.TrimSpace(h), ",")
	if len(cols) < 4 || cols[0] != "vm_id" || cols[1] != "t_seconds" || cols[3] != "mem_bytes_used" {
		return 0, fmt.Errorf("header %q: want vm_id,t_seconds,<%s|%s>,mem_bytes_used[,...]", h, columnCores, columnPercent)
	}
	tr.CPUColumn = cols[2]
	switch cols[2] {
	case columnCores:
		return 1, nil
	case columnPercent:
		if !(opts.VMMaxVCPUs > 0) {
			return 0, fmt.Errorf("the CPU column is %s: --vm-max-vcpus must say what 100%% is", columnPercent)
		}
		return opts.VMMaxVCPUs / 100, nil
	}
	return 0, fmt.Errorf("column 3 is %q: want %s or %s", cols[2], columnCores, columnPercent)
}

func (tr *Trace) row(text string, scale float64, seen map[string]bool) error {
	cols := strings.SplitN(text, ",", 5)
	if len(cols) < 4 {
		return fmt.Errorf("%d columns, want at least 4 (vm_id,t_seconds,%s,mem_bytes_used)", len(cols), tr.CPUColumn)
	}
	id := strings.TrimSpace(cols[0])
	if id == "" {
		return errors.New("vm_id: empty")
	}
	t, err := strconv.ParseInt(strings.TrimSpace(cols[1]), 10, 64)
	if err != nil || t < 0 {
		return fmt.Errorf("t_seconds: %q is not a whole number of seconds >= 0", cols[1])
	}
	cpu, err := strconv.ParseFloat(strings.TrimSpace(cols[2]), 64)
	if err != nil || cpu < 0 || math.IsInf(cpu, 0) || math.IsNaN(cpu) {
		return fmt.Errorf("%s: %q is not a finite number >= 0", tr.CPUColumn, cols[2])
	}
	var mem uint64
	if m := strings.TrimSpace(cols[3]); m != "" {
		if mem, err = strconv.ParseUint(m, 10, 64); err != nil {
			return fmt.Errorf("mem_bytes_used: %q is not a whole number of bytes >= 0 (or empty)", cols[3])
		}
	}
	n := len(tr.VMs)
	if n == 0 || tr.VMs[n-1].ID != id {
		if seen[id] {
			return fmt.Errorf("vm_id: %q appears again after other VMs; rows must be grouped by VM", id)
		}
		seen[id] = true
		tr.VMs = append(tr.VMs, VMTrace{ID: id})
		n++
	}
	vm := &tr.VMs[n-1]
	if k := len(vm.Samples); k > 0 && t <= vm.Samples[k-1].T {
		return fmt.Errorf("t_seconds: %d is not after the VM's previous row (%d); rows must be in time order", t, vm.Samples[k-1].T)
	}
	vm.Samples = append(vm.Samples, Sample{T: t, CPU: cpu * scale, Mem: mem})
	return nil
}
