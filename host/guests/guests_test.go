package guests

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

func report(vm string, t int64, load float64) *pb.GuestReport {
	return &pb.GuestReport{Name: vm, Metrics: &pb.MetricsWindow{
		TUnixNano: []int64{t}, Load1: []float64{load}, OnlineVcpuMilli: []int64{1000}, UptimeNanos: []int64{t},
	}}
}

func TestWindowKeepsRecentOrderedSamples(t *testing.T) {
	b := New(10*time.Second, hclog.NewNullLogger(), nil)
	for _, ts := range []int64{1, 5, 3, 12, 20} { // 3 is out of order
		require.NoError(t, b.Add(report("a", ts*int64(time.Second), float64(ts))))
	}
	w, _, ok := b.Window("a")
	require.True(t, ok)
	require.Equal(t, []float64{12, 20}, w.GetLoad1(), "older than 10s before the newest, or out of order, is dropped")
	require.Len(t, w.GetUptimeNanos(), 2)
	_, _, ok = b.Window("b")
	require.False(t, ok, "no data, no decision")
}

func TestMalformedReportIsRefusedWhole(t *testing.T) {
	b := New(time.Minute, hclog.NewNullLogger(), nil)
	bad := report("a", 1, 1)
	bad.Metrics.Load5 = []float64{1, 2}
	require.ErrorContains(t, b.Add(bad), "metrics.load5: 2 values for 1 timestamps")
	bad = report("a", 0, 1)
	require.ErrorContains(t, b.Add(bad), "metrics.t_unix_nano[0]: must be > 0")
	_, _, ok := b.Window("a")
	require.False(t, ok)
}

func TestEventsAreHandedOverOnceAndPressureCallsBack(t *testing.T) {
	var called atomic.Int32
	b := New(time.Minute, hclog.NewNullLogger(), func(vm string) {
		require.Equal(t, "a", vm)
		called.Add(1)
	})
	r := report("a", 1, 1)
	r.Events = []*pb.GuestEvent{{Type: pb.GuestEventType_GUEST_EVENT_TYPE_MEMORY_PRESSURE, TUnixNano: 1}}
	require.NoError(t, b.Add(r))
	require.Equal(t, int32(1), called.Load())
	_, ev, _ := b.Window("a")
	require.Len(t, ev, 1)
	_, ev, _ = b.Window("a")
	require.Empty(t, ev)
}

type fakeStream struct {
	reports []*pb.GuestReport
	err     error
}

func (f *fakeStream) Recv() (*pb.GuestReport, error) {
	if len(f.reports) == 0 {
		return nil, f.err
	}
	r := f.reports[0]
	f.reports = f.reports[1:]
	return r, nil
}

// A broken stream is reopened, and what the new one brings is kept.
func TestFollowReopensBrokenStreams(t *testing.T) {
	b := New(time.Minute, hclog.NewNullLogger(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opened := make(chan int, 10)
	n := 0
	done := make(chan struct{})
	go func() {
		b.Follow(ctx, func(context.Context) (interface {
			Recv() (*pb.GuestReport, error)
		}, error) {
			n++
			opened <- n
			switch n {
			case 1:
				return nil, errors.New("plugin restarting")
			case 2:
				return &fakeStream{reports: []*pb.GuestReport{report("a", 1, 1)}, err: errors.New("broken")}, nil
			default:
				return &fakeStream{reports: []*pb.GuestReport{report("a", 2, 2)}, err: context.Canceled}, nil
			}
		})
		close(done)
	}()
	for want := 1; want <= 3; want++ {
		select {
		case got := <-opened:
			require.Equal(t, want, got)
		case <-time.After(10 * time.Second):
			t.Fatalf("stream not reopened (%d)", want)
		}
	}
	require.Eventually(t, func() bool {
		s, ok := b.Latest("a")
		return ok && s.Load1 == 2
	}, 10*time.Second, time.Millisecond)
	cancel()
	<-done
}

func TestDatabaseColumnsAreAllOrNothing(t *testing.T) {
	b := New(time.Minute, hclog.NewNullLogger(), nil)
	require.NoError(t, b.Add(report("pg", 1e9, 1)))
	withDB := func(ts int64, active uint32) *pb.GuestReport {
		r := report("pg", ts, 1)
		r.Metrics.DbActiveConnections, r.Metrics.DbConnections, r.Metrics.DbWorkingSetBytes = []uint32{active}, []uint32{active + 2}, []uint64{64 << 20}
		return r
	}
	require.NoError(t, b.Add(withDB(2e9, 3)))
	w, _, _ := b.Window("pg")
	require.Empty(t, w.GetDbActiveConnections(), "a window mixing samples without the database has no database columns")

	b = New(time.Minute, hclog.NewNullLogger(), nil)
	require.NoError(t, b.Add(withDB(1e9, 3)))
	require.NoError(t, b.Add(withDB(2e9, 5)))
	w, _, _ = b.Window("pg")
	require.Equal(t, []uint32{3, 5}, w.GetDbActiveConnections())
	require.Equal(t, []uint32{5, 7}, w.GetDbConnections())
	require.Equal(t, []uint64{64 << 20, 64 << 20}, w.GetDbWorkingSetBytes())

	partial := withDB(3e9, 1)
	partial.Metrics.DbConnections = nil
	require.NoError(t, b.Add(partial), "a partial database report is a guest without one, not malformed")
	bad := withDB(4e9, 1)
	bad.Metrics.DbWorkingSetBytes = []uint64{1, 2}
	require.ErrorContains(t, b.Add(bad), "metrics.db_working_set_bytes: 2 values for 1 timestamps")
}
