// Package procfs reads processes' CPU time from /proc, for the benchmarks
// and the end-to-end tests alike.
package procfs

import (
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// CPUTicks returns utime+stime (fields 14 and 15) of /proc/PID/stat.
// The command name (field 2) may hold spaces and parentheses, so fields are
// counted from the last ')'.
func CPUTicks(stat string) (uint64, error) {
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, fmt.Errorf("no ')' closing the command name")
	}
	// After the name come state (field 3), ppid (4), ... utime (14), stime (15).
	fields := strings.Fields(stat[end+1:])
	const utime, stime = 14 - 3, 15 - 3
	if len(fields) <= stime {
		return 0, fmt.Errorf("%d fields after the command name, want more than %d", len(fields), stime)
	}
	var total uint64
	for _, i := range []int{utime, stime} {
		n, err := strconv.ParseUint(fields[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("field %d: %w", i+3, err)
		}
		total += n
	}
	return total, nil
}

// ClockTicks is the kernel's USER_HZ, the unit of /proc/PID/stat times.
// Nearly every Linux has 100, which stands in when getconf is missing.
func ClockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	hz, err := strconv.ParseFloat(string(bytes.TrimSpace(out)), 64)
	if err != nil || hz <= 0 {
		return 100
	}
	return hz
}
