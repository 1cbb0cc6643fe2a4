package fleet

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentproto"
)

// A guest running Postgres fills the database columns, zeros included; a
// guest without one leaves them empty (TestMetricsBecomeAOneSampleWindowWithEveryColumn).
func TestDatabaseColumnsOnlyFromAGuestWithADatabase(t *testing.T) {
	m := metrics()
	m.DB = &agentproto.DBStats{ActiveConnections: 3, Connections: 7, WorkingSetBytes: 96 << 20}
	w := reportFrom("pg-1", m).GetMetrics()
	require.Equal(t, []uint32{3}, w.GetDbActiveConnections())
	require.Equal(t, []uint32{7}, w.GetDbConnections())
	require.Equal(t, []uint64{96 << 20}, w.GetDbWorkingSetBytes())

	m.DB = &agentproto.DBStats{}
	w = reportFrom("pg-1", m).GetMetrics()
	require.Equal(t, []uint32{0}, w.GetDbActiveConnections(), "an idle database is not a missing one")
	require.Equal(t, []uint64{0}, w.GetDbWorkingSetBytes())
}
