package simulate

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, err := zw.Write([]byte(s))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return b.Bytes()
}

func TestParseTracePlainAndGzip(t *testing.T) {
	text := "vm_id,t_seconds,cpu_cores_used,mem_bytes_used,extra\n" +
		"a,0,0.5,1000,x\n" +
		"a,300,1.25,0,y\n" +
		"\n" +
		"b,0,2,,z\n"
	want := &Trace{CPUColumn: columnCores, VMs: []VMTrace{
		{ID: "a", Samples: []Sample{{T: 0, CPU: 0.5, Mem: 1000}, {T: 300, CPU: 1.25}}},
		{ID: "b", Samples: []Sample{{T: 0, CPU: 2}}},
	}}
	for _, in := range [][]byte{[]byte(text), gzipped(t, text)} {
		got, err := ParseTrace(bytes.NewReader(in), ParseOptions{})
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
}

func TestParseTraceScalesCPUPercent(t *testing.T) {
	text := "vm_id,t_seconds,cpu_pct,mem_bytes_used\nv1,0,25,\nv1,300,100,\n"
	got, err := ParseTrace(strings.NewReader(text), ParseOptions{VMMaxVCPUs: 4})
	require.NoError(t, err)
	require.Equal(t, []Sample{{T: 0, CPU: 1}, {T: 300, CPU: 4}}, got.VMs[0].Samples)

	_, err = ParseTrace(strings.NewReader(text), ParseOptions{})
	require.EqualError(t, err, "line 1: the CPU column is cpu_pct: --vm-max-vcpus must say what 100% is")
}

func TestParseTraceErrorsNameTheLine(t *testing.T) {
	const head = "vm_id,t_seconds,cpu_cores_used,mem_bytes_used\n"
	for _, tc := range []struct{ text, want string }{
		{"", "line 1: empty trace, want a header"},
		{"vm,t,cpu,mem\n", `line 1: header "vm,t,cpu,mem": want vm_id,t_seconds,<cpu_cores_used|cpu_pct>,mem_bytes_used[,...]`},
		{"vm_id,t_seconds,cpu_mhz,mem_bytes_used\n", `line 1: column 3 is "cpu_mhz": want cpu_cores_used or cpu_pct`},
		{head, "no rows after the header"},
		{head + "a,0,1,5\na,300,1\n", "line 3: 3 columns, want at least 4 (vm_id,t_seconds,cpu_cores_used,mem_bytes_used)"},
		{head + ",0,1,5\n", "line 2: vm_id: empty"},
		{head + "a,soon,1,5\n", `line 2: t_seconds: "soon" is not a whole number of seconds >= 0`},
		{head + "a,-300,1,5\n", `line 2: t_seconds: "-300" is not a whole number of seconds >= 0`},
		{head + "a,0,-1,5\n", `line 2: cpu_cores_used: "-1" is not a finite number >= 0`},
		{head + "a,0,NaN,5\n", `line 2: cpu_cores_used: "NaN" is not a finite number >= 0`},
		{head + "a,0,1,1.5GB\n", `line 2: mem_bytes_used: "1.5GB" is not a whole number of bytes >= 0 (or empty)`},
		{head + "a,0,1,5\na,0,1,5\n", "line 3: t_seconds: 0 is not after the VM's previous row (0); rows must be in time order"},
		{head + "a,0,1,5\nb,0,1,5\na,300,1,5\n", `line 4: vm_id: "a" appears again after other VMs; rows must be grouped by VM`},
	} {
		_, err := ParseTrace(strings.NewReader(tc.text), ParseOptions{})
		require.EqualError(t, err, tc.want, "%q", tc.text)
	}
}
