package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseMemInfo(t *testing.T) {
	m, err := parseMemInfo([]byte(meminfoFixture))
	require.NoError(t, err)
	require.Equal(t, memInfo{Total: 401332 << 10, Available: 369072 << 10, Cached: 4924 << 10}, m)
	require.Equal(t, uint64(401332-369072)<<10, m.Used())

	for _, tc := range []struct{ name, in, err string }{
		{"no MemAvailable", "MemTotal: 100 kB\nCached: 1 kB\n", "MemAvailable: missing"},
		{"no MemTotal", "MemAvailable: 100 kB\n", "MemTotal: missing"},
		{"zero total", "MemTotal: 0 kB\nMemAvailable: 0 kB\n", "MemTotal: must be > 0"},
		{"bad number", "MemTotal: 1x kB\nMemAvailable: 1 kB\n", "meminfo: MemTotal"},
		{"bad unit", "MemTotal: 100 MB\nMemAvailable: 1 kB\n", `MemTotal: want "N kB"`},
		{"empty value", "MemTotal:\nMemAvailable: 1 kB\n", `MemTotal: want "N kB"`},
		{"empty", "", "MemTotal: missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseMemInfo([]byte(tc.in))
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func TestMemInfoUsedNeverUnderflows(t *testing.T) {
	require.Zero(t, memInfo{Total: 10, Available: 11}.Used())
}

func TestParseLoadAvg(t *testing.T) {
	l1, l5, err := parseLoadAvg([]byte("0.52 0.58 0.59 2/345 12345\n"))
	require.NoError(t, err)
	require.Equal(t, 0.52, l1)
	require.Equal(t, 0.58, l5)

	for _, in := range []string{"", "0.5 0.6", "x 0.6 0.7 1/2 3", "0.5 -1 0.7 1/2 3"} {
		_, _, err := parseLoadAvg([]byte(in))
		require.ErrorContains(t, err, "loadavg", "input %q", in)
	}
}

func TestParsePressureSome10(t *testing.T) {
	p, err := parsePressureSome10([]byte(pressureFixture))
	require.NoError(t, err)
	require.Equal(t, 1.53, p)

	// Only "some" counts, wherever it is; the cpu file of older kernels
	// has no "full" line.
	p, err = parsePressureSome10([]byte("full avg10=9.00 avg60=0 avg300=0 total=0\nsome avg10=2.50 avg60=0 avg300=0 total=0\n"))
	require.NoError(t, err)
	require.Equal(t, 2.5, p)

	for _, tc := range []struct{ in, err string }{
		{"", `no "some" line`},
		{"full avg10=1.00 total=0\n", `no "some" line`},
		{"some avg60=1.00 total=0\n", "no avg10"},
		{"some avg10=abc\n", "some avg10"},
		{"some avg10=101.0\n", "above 100"},
	} {
		_, err := parsePressureSome10([]byte(tc.in))
		require.ErrorContains(t, err, tc.err, "input %q", tc.in)
	}
}

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string][]int{
		"0\n":       {0},
		"0-3":       {0, 1, 2, 3},
		"0,2-3,7\n": {0, 2, 3, 7},
		"":          nil,
		"\n":        nil,
	} {
		got, err := parseCPUList(in)
		require.NoError(t, err, "input %q", in)
		require.Equal(t, want, got, "input %q", in)
	}
	for _, in := range []string{"a", "3-1", "0-", "-1", "2,1", "0-3,2"} {
		_, err := parseCPUList(in)
		require.Error(t, err, "input %q", in)
	}
}

func TestParseKernelArgs(t *testing.T) {
	args, err := parseKernelArgs("console=ttyS0 quiet vertigo.memory_floor=268435456 vertigo.echo_port=7007 panic=1\n")
	require.NoError(t, err)
	require.Equal(t, kernelArgs{memoryFloor: 256 << 20, echoPort: 7007}, args)

	args, err = parseKernelArgs("console=ttyS0")
	require.NoError(t, err)
	require.Equal(t, kernelArgs{echoPort: defaultEchoPort}, args, "no floor, echo on its usual port")

	args, err = parseKernelArgs("vertigo.echo_port=0")
	require.NoError(t, err)
	require.Zero(t, args.echoPort, "0 turns the echo service off")

	_, err = parseKernelArgs("vertigo.memory_floor=256MiB")
	require.ErrorContains(t, err, "vertigo.memory_floor: want bytes")
	_, err = parseKernelArgs("vertigo.echo_port=70000")
	require.ErrorContains(t, err, "vertigo.echo_port: want a TCP port")
}
