package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
	"github.com/vertigo-autoscaler/vertigo/sdk/sdktest"
)

// withDB fills the database columns of a vmInput window: every sample with
// active of conns connections running and a steady working set.
func withDB(v *pb.ScalerInput, active, conns uint32, workingSet uint64) *pb.ScalerInput {
	m := v.GetMetrics()
	for range m.GetTUnixNano() {
		m.DbActiveConnections = append(m.DbActiveConnections, active)
		m.DbConnections = append(m.DbConnections, conns)
		m.DbWorkingSetBytes = append(m.DbWorkingSetBytes, workingSet)
	}
	return v
}

func TestDatabaseColumnsReachTheDecision(t *testing.T) {
	c := sdktest.Connect(t, newPlugin())
	resp, err := c.Scaler.Decide(context.Background(), request(vmInput("plain", 0.5, gib), withDB(vmInput("pg", 0.5, gib), 8, 10, 6*gib)))
	require.NoError(t, err)
	require.Equal(t, &pb.Size{VcpuMilli: 1000, MemoryBytes: 4 * gib}, resp.GetDecisions()[0].GetGoal())
	require.Equal(t, &pb.Size{VcpuMilli: 4000, MemoryBytes: 7 * gib}, resp.GetDecisions()[1].GetGoal(),
		"8 active x 0.5 vCPU; 6GiB working set + 256MiB")
}

func TestMalformedDatabaseColumnsAreNamed(t *testing.T) {
	c := sdktest.Connect(t, newPlugin())
	for _, tc := range []struct {
		edit func(*pb.MetricsWindow)
		want string
	}{
		{func(m *pb.MetricsWindow) { m.DbConnections = m.DbConnections[:5] }, "vms[0].metrics: column db_connections has 5 values, t_unix_nano has 12"},
		{func(m *pb.MetricsWindow) {
			m.DbWorkingSetBytes = nil
			m.DbActiveConnections = m.DbActiveConnections[1:]
		}, "vms[0].metrics: column db_active_connections has 11 values, t_unix_nano has 12"},
		{func(m *pb.MetricsWindow) { m.DbActiveConnections[3] = 11 }, "vms[0].metrics.db_active_connections[3]: 11 exceeds db_connections[3] 10"},
	} {
		v := withDB(vmInput("pg", 1, gib), 2, 10, gib)
		tc.edit(v.GetMetrics())
		_, err := c.Scaler.Decide(context.Background(), request(v))
		require.Equal(t, codes.InvalidArgument, status.Code(err), tc.want)
		require.Equal(t, tc.want, status.Convert(err).Message())
	}
}
