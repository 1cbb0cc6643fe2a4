package agentproto

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	in := []*Message{
		{Type: TypeHello, Version: Version, AgentName: "vertigo-agent"},
		{Type: TypeMetrics, TUnixNano: 5, Load1: 1.5, OnlineCPUs: 2, MemoryTotalBytes: 1 << 30},
		{Type: TypeRequest, ID: 7, Op: OpSetCPUs, CPUs: 3},
		{Type: TypeReply, ID: 7, OK: true},
		{Type: TypeRequest, ID: 8, Op: OpHello},
		{Type: TypeEvent, Event: EventProtocolError, TUnixNano: 9, Error: "invalid character"},
	}
	for _, m := range in {
		require.NoError(t, w.Write(m))
	}
	r := NewReader(&buf)
	for _, want := range in {
		got, err := r.Read()
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	_, err := r.Read()
	require.ErrorIs(t, err, io.EOF)
}

func TestMalformedLinesAreNamedAndSkipped(t *testing.T) {
	r := NewReader(strings.NewReader(`{"type":"metrics","t":1,"cpus":0,"mem_total":1}
not json
{"type":"gossip"}
{"type":"metrics","t":1,"cpus":1,"mem_total":1,"cpu_psi":400}
{"type":"reply","id":3,"ok":true}
`))
	for _, want := range []string{"metrics.cpus: must be > 0", "invalid character", `type: unknown "gossip"`, "pressure within 0..100"} {
		_, err := r.Read()
		var me *MalformedError
		require.True(t, errors.As(err, &me), "%v", err)
		require.ErrorContains(t, err, want)
	}
	m, err := r.Read()
	require.NoError(t, err, "the reader goes on after malformed lines")
	require.Equal(t, uint64(3), m.ID)
}
