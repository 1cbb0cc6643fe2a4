package fleet

import (
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentproto"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

func metrics() *agentproto.Message {
	return &agentproto.Message{
		Type: agentproto.TypeMetrics, TUnixNano: 1700000000e9, Load1: 1.5, Load5: 0.5,
		CPUPressureAvg10: 12, MemoryPressureAvg10: 3, MemoryUsedBytes: 100 << 20, MemoryCachedBytes: 20 << 20,
		MemoryTotalBytes: 400 << 20, OnlineCPUs: 2, UptimeNanos: int64(90 * time.Second),
	}
}

func TestMetricsBecomeAOneSampleWindowWithEveryColumn(t *testing.T) {
	r := reportFrom("pg-1", metrics())
	require.Equal(t, "pg-1", r.GetName())
	require.Equal(t, &pb.MetricsWindow{
		TUnixNano: []int64{1700000000e9}, Load1: []float64{1.5}, Load5: []float64{0.5},
		CpuPressureAvg10: []float64{12}, MemoryPressureAvg10: []float64{3},
		MemoryUsedBytes: []uint64{100 << 20}, MemoryCachedBytes: []uint64{20 << 20},
		OnlineVcpuMilli: []int64{2000}, OnlineMemoryBytes: []uint64{400 << 20}, UptimeNanos: []int64{int64(90 * time.Second)},
	}, r.GetMetrics())
	require.Empty(t, r.GetEvents())
}

func TestHelloAndPressureBecomeEvents(t *testing.T) {
	hello := metrics()
	hello.Type, hello.Version, hello.AgentName, hello.KernelLabel = agentproto.TypeHello, 1, "vertigo-agent", "6.1.0"
	r := reportFrom("pg-1", hello)
	require.Len(t, r.GetEvents(), 1)
	require.Equal(t, pb.GuestEventType_GUEST_EVENT_TYPE_AGENT_READY, r.GetEvents()[0].GetType())
	require.Contains(t, r.GetEvents()[0].GetMessage(), "vertigo-agent (protocol v1, kernel 6.1.0), guest up 1m30s")
	require.Equal(t, []int64{2000}, r.GetMetrics().GetOnlineVcpuMilli(), "a hello's state is a sample too")

	bare := reportFrom("pg-1", &agentproto.Message{Type: agentproto.TypeHello, Version: 1})
	require.Nil(t, bare.GetMetrics(), "no sample without the state")

	pressure := reportFrom("pg-1", &agentproto.Message{Type: agentproto.TypeEvent, Event: agentproto.EventMemoryPressure, TUnixNano: 5, MemoryUsedBytes: 390 << 20, MemoryTotalBytes: 400 << 20})
	require.Equal(t, []*pb.GuestEvent{{
		Type: pb.GuestEventType_GUEST_EVENT_TYPE_MEMORY_PRESSURE, TUnixNano: 5,
		Message: "memory used 408944640 of 419430400 bytes", MemoryUsedBytes: 390 << 20, MemoryTotalBytes: 400 << 20,
	}}, pressure.GetEvents())

	require.Nil(t, reportFrom("pg-1", &agentproto.Message{Type: agentproto.TypeEvent, Event: agentproto.EventCPUOnline, TUnixNano: 5, OnlineCPUs: 3}))
}

func TestSubscriptionsGetTheirVMsAndNeverBlockTheAgents(t *testing.T) {
	hub := NewHub(hclog.NewNullLogger())
	one := hub.Subscribe([]string{"pg-1"})
	all := hub.Subscribe(nil)
	stalled := hub.Subscribe(nil)
	defer one.Close()
	defer all.Close()
	defer stalled.Close()

	hub.Agent("pg-2", metrics())
	hub.Agent("pg-1", metrics())
	hub.DownscaleRefused("pg-1", "below used memory")
	require.Equal(t, "pg-1", (<-one.Reports()).GetName())
	refused := <-one.Reports()
	require.Equal(t, pb.GuestEventType_GUEST_EVENT_TYPE_DOWNSCALE_REFUSED, refused.GetEvents()[0].GetType())
	require.Equal(t, "below used memory", refused.GetEvents()[0].GetMessage())
	require.Equal(t, "pg-2", (<-all.Reports()).GetName())
	require.Empty(t, one.Reports())

	// stalled never reads: publishing goes on, its reports are dropped.
	for range 2 * reportBuffer {
		hub.Agent("pg-1", metrics())
	}
	require.Len(t, stalled.Reports(), reportBuffer)
	require.Equal(t, 2*reportBuffer+3-reportBuffer, stalled.dropped)

	closed := hub.Subscribe(nil)
	closed.Close()
	hub.Agent("pg-1", metrics())
	require.Empty(t, closed.Reports(), "a closed subscription gets nothing more")
}
