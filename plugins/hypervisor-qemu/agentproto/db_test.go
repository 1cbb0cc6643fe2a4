package agentproto

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// An idle database (no connections, nothing active) must stay
// distinguishable from no database at all.
func TestDBStatsSurviveTheWireEvenWhenZero(t *testing.T) {
	r := NewReader(strings.NewReader(`{"type":"metrics","t":1,"cpus":1,"mem_total":1,"db":{"active":0,"connections":0,"working_set":0}}
{"type":"metrics","t":2,"cpus":1,"mem_total":1,"db":{"active":2,"connections":5,"working_set":4096}}
{"type":"metrics","t":3,"cpus":1,"mem_total":1}
{"type":"metrics","t":4,"cpus":1,"mem_total":1,"db":{"active":3,"connections":2}}
`))
	for _, want := range []*DBStats{{}, {ActiveConnections: 2, Connections: 5, WorkingSetBytes: 4096}, nil} {
		m, err := r.Read()
		require.NoError(t, err)
		require.Equal(t, want, m.DB)
	}
	_, err := r.Read()
	require.ErrorContains(t, err, "metrics.db.active: 3 exceeds metrics.db.connections 2")
}
