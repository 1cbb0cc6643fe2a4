package main

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// memInfo is what the agent needs from /proc/meminfo, in bytes.
type memInfo struct {
	Total, Available, Cached uint64
	// Shmem and ActiveFile ("Active(file)") make the database's working set.
	Shmem, ActiveFile uint64
}

// Used is memory that cannot be handed back without pressure: what the
// kernel does not count as available (page cache it can drop is not used).
func (m memInfo) Used() uint64 {
	if m.Available > m.Total {
		return 0
	}
	return m.Total - m.Available
}

// parseMemInfo reads /proc/meminfo. MemTotal and MemAvailable are required
// (MemAvailable exists since Linux 3.14); lines it does not know are skipped.
func parseMemInfo(b []byte) (memInfo, error) {
	var m memInfo
	fields := map[string]*uint64{
		"MemTotal": &m.Total, "MemAvailable": &m.Available, "Cached": &m.Cached,
		"Shmem": &m.Shmem, "Active(file)": &m.ActiveFile,
	}
	seen := map[string]bool{}
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		key, rest, ok := strings.Cut(s.Text(), ":")
		dst := fields[key]
		if !ok || dst == nil {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 || len(f) > 2 || (len(f) == 2 && f[1] != "kB") {
			return memInfo{}, fmt.Errorf("meminfo: %s: want \"N kB\", got %q", key, strings.TrimSpace(rest))
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return memInfo{}, fmt.Errorf("meminfo: %s: %w", key, err)
		}
		*dst = kb << 10
		seen[key] = true
	}
	for _, k := range []string{"MemTotal", "MemAvailable"} {
		if !seen[k] {
			return memInfo{}, fmt.Errorf("meminfo: %s: missing", k)
		}
	}
	if m.Total == 0 {
		return memInfo{}, fmt.Errorf("meminfo: MemTotal: must be > 0")
	}
	return m, nil
}

// parseLoadAvg reads the 1- and 5-minute load averages from /proc/loadavg
// ("0.52 0.58 0.59 2/345 12345").
func parseLoadAvg(b []byte) (load1, load5 float64, err error) {
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return 0, 0, fmt.Errorf("loadavg: want at least 3 fields, got %q", strings.TrimSpace(string(b)))
	}
	if load1, err = parseNonNegative("loadavg: load1", f[0]); err != nil {
		return 0, 0, err
	}
	if load5, err = parseNonNegative("loadavg: load5", f[1]); err != nil {
		return 0, 0, err
	}
	return load1, load5, nil
}

// pressureSome returns the value of key ("avg10", "total") on the "some"
// line of a /proc/pressure/* file:
//
//	some avg10=1.53 avg60=0.87 avg300=0.27 total=11260587
//	full avg10=0.00 avg60=0.00 avg300=0.00 total=0
func pressureSome(b []byte, key string) (string, error) {
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) == 0 || f[0] != "some" {
			continue
		}
		for _, kv := range f[1:] {
			if v, ok := strings.CutPrefix(kv, key+"="); ok {
				return v, nil
			}
		}
		return "", fmt.Errorf("pressure: some line has no %s: %q", key, s.Text())
	}
	return "", fmt.Errorf("pressure: no \"some\" line")
}

// parsePressureSome10 reads "some avg10", a percentage.
func parsePressureSome10(b []byte) (float64, error) {
	v, err := pressureSome(b, "avg10")
	if err != nil {
		return 0, err
	}
	p, err := parseNonNegative("pressure: some avg10", v)
	if err != nil {
		return 0, err
	}
	if p > 100 {
		return 0, fmt.Errorf("pressure: some avg10: %v is above 100", p)
	}
	return p, nil
}

// parsePressureSomeTotal reads "some total" (microseconds stalled since
// boot): unlike avg10, its differences tell what happened in the last few
// hundred milliseconds.
func parsePressureSomeTotal(b []byte) (uint64, error) {
	v, err := pressureSome(b, "total")
	if err != nil {
		return 0, err
	}
	t, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("pressure: some total: %v", err)
	}
	return t, nil
}

func parseNonNegative(name, s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if v < 0 {
		return 0, fmt.Errorf("%s: %v is negative", name, v)
	}
	return v, nil
}

// parseCPUList reads a kernel CPU list ("0-3,6,8-9\n"), as in
// /sys/devices/system/cpu/{present,online,possible}, into ascending order.
func parseCPUList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var cpus []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("cpu list %q: bad CPU %q", s, lo)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("cpu list %q: bad range %q", s, part)
			}
		}
		if len(cpus) > 0 && a <= cpus[len(cpus)-1] {
			return nil, fmt.Errorf("cpu list %q: not ascending at %q", s, part)
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// kernelArgs are the agent's settings from the kernel command line.
type kernelArgs struct {
	// memoryFloor (vertigo.memory_floor=BYTES): the guest never consents
	// to a downscale below it.
	memoryFloor uint64
	// echoPort (vertigo.echo_port=PORT, 0 for none): the TCP echo service.
	echoPort uint16
}

// parseKernelArgs picks the agent's settings from /proc/cmdline.
func parseKernelArgs(cmdline string) (kernelArgs, error) {
	args := kernelArgs{echoPort: defaultEchoPort}
	for _, arg := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(arg, "vertigo.memory_floor="); ok {
			floor, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return args, fmt.Errorf("kernel command line: vertigo.memory_floor: want bytes, got %q", v)
			}
			args.memoryFloor = floor
		}
		if v, ok := strings.CutPrefix(arg, "vertigo.echo_port="); ok {
			port, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return args, fmt.Errorf("kernel command line: vertigo.echo_port: want a TCP port or 0, got %q", v)
			}
			args.echoPort = uint16(port)
		}
	}
	return args, nil
}
