package main

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentproto"
)

func TestDownscaleVerdict(t *testing.T) {
	mem := memInfo{Total: 1024 << 20, Available: 724 << 20} // 300MiB used
	for _, tc := range []struct {
		name   string
		cpus   int
		target uint64
		floor  uint64
		err    string
	}{
		{"room to spare", 1, 512 << 20, 0, ""},
		{"exactly used + headroom", 1, 400 << 20, 0, ""},
		{"below used + headroom", 1, 400<<20 - 1, 0, "is below the 300.0MiB in use plus 100.0MiB headroom"},
		{"below the floor", 1, 450 << 20, 500 << 20, "below the guest's floor of 500.0MiB"},
		{"memory unchanged", 1, 0, 500 << 20, ""},
		{"negative cpus", -1, 512 << 20, 0, "downscale.cpus_target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := downscaleVerdict(&agentproto.Message{CPUs: tc.cpus, MemoryBytes: tc.target}, mem, tc.floor)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func TestLoadSpecOf(t *testing.T) {
	mem := memInfo{Total: 1 << 30, Available: 1 << 29}
	spec, err := loadSpecOf(&agentproto.Message{CPUWorkers: 2, MemoryBytes: 64 << 20, DurationNs: int64(time.Second)}, mem)
	require.NoError(t, err)
	require.Equal(t, loadSpec{Workers: 2, Memory: 64 << 20, Duration: time.Second}, spec)

	spec, err = loadSpecOf(&agentproto.Message{}, mem)
	require.NoError(t, err, "an empty load stops the running one; it needs no duration")
	require.Equal(t, loadSpec{}, spec)

	for _, tc := range []struct {
		req agentproto.Message
		err string
	}{
		{agentproto.Message{CPUWorkers: -1, DurationNs: 1}, "load.cpu_workers"},
		{agentproto.Message{CPUWorkers: maxLoadWorkers + 1, DurationNs: 1}, "load.cpu_workers"},
		{agentproto.Message{MemoryBytes: 2 << 30, DurationNs: 1}, "load.memory_bytes"},
		{agentproto.Message{CPUWorkers: 1}, "load.duration_ns"},
		{agentproto.Message{CPUWorkers: 1, DurationNs: int64(2 * time.Hour)}, "load.duration_ns"},
	} {
		_, err := loadSpecOf(&tc.req, mem)
		require.ErrorContains(t, err, tc.err, "request %+v", tc.req)
	}
}

func TestHandleRepliesToEachOp(t *testing.T) {
	g := newFakeGuest(t, 4, map[int]bool{0: true, 1: true})
	a, _ := newTestAgent(g, 0)

	reply := a.handle(&agentproto.Message{Type: agentproto.TypeRequest, ID: 1, Op: agentproto.OpPing})
	require.Equal(t, &agentproto.Message{Type: agentproto.TypeReply, ID: 1, OK: true}, reply)

	reply = a.handle(&agentproto.Message{Type: agentproto.TypeRequest, ID: 2, Op: agentproto.OpSetCPUs, CPUs: 1})
	require.True(t, reply.OK, reply.Error)
	require.Equal(t, 1, reply.OnlineCPUs)
	require.False(t, g.cpuOnline(1))

	reply = a.handle(&agentproto.Message{Type: agentproto.TypeRequest, ID: 3, Op: agentproto.OpSetCPUs, CPUs: 9})
	require.False(t, reply.OK)
	require.Contains(t, reply.Error, "set_cpus.cpus_target")
	require.Equal(t, uint64(3), reply.ID)

	// The fixture guest uses 31.5MiB.
	reply = a.handle(&agentproto.Message{Type: agentproto.TypeRequest, ID: 4, Op: agentproto.OpDownscale, MemoryBytes: 100 << 20})
	require.False(t, reply.OK)
	require.Contains(t, reply.Error, "downscale.memory_bytes")
	reply = a.handle(&agentproto.Message{Type: agentproto.TypeRequest, ID: 5, Op: agentproto.OpDownscale, MemoryBytes: 200 << 20})
	require.True(t, reply.OK, reply.Error)

	reply = a.handle(&agentproto.Message{Type: agentproto.TypeRequest, ID: 6, Op: agentproto.OpLoad, CPUWorkers: 1})
	require.False(t, reply.OK)
	require.Contains(t, reply.Error, "load.duration_ns")
}

func TestHandleHelloQueuesAHelloBeforeTheReply(t *testing.T) {
	g := newFakeGuest(t, 2, map[int]bool{0: true})
	a, _ := newTestAgent(g, 0)
	a.out.post(&agentproto.Message{Type: agentproto.TypeReply, ID: 1, OK: true})
	a.answer(&agentproto.Message{Type: agentproto.TypeRequest, ID: 2, Op: agentproto.OpHello})

	require.Equal(t, uint64(1), nextMessage(t, a.out).ID, "an earlier reply to the same host survives")
	hello := nextMessage(t, a.out)
	require.Equal(t, agentproto.TypeHello, hello.Type)
	require.NoError(t, hello.Validate())
	require.Equal(t, uint64(2), nextMessage(t, a.out).ID)
}

func TestBadLinesAreAnswered(t *testing.T) {
	g := newFakeGuest(t, 2, map[int]bool{0: true})
	a, _ := newTestAgent(g, 0)

	// With an id: a reply naming the problem.
	line := `{"type":"request","id":7,"op":"reboot"}`
	a.reject(idOf(line), errors.New(`request.op: unknown "reboot"`))
	reply := nextMessage(t, a.out)
	require.Equal(t, agentproto.TypeReply, reply.Type)
	require.Equal(t, uint64(7), reply.ID)
	require.False(t, reply.OK)
	require.Contains(t, reply.Error, "request.op")

	// Without one: a protocol_error event the plugin can log.
	require.Zero(t, idOf("not json"))
	require.Zero(t, idOf(`{"type":"request","id":"seven"}`))
	a.reject(idOf("not json"), errors.New("invalid character 'o'"))
	ev := nextMessage(t, a.out)
	require.Equal(t, agentproto.EventProtocolError, ev.Event)
	require.NoError(t, ev.Validate())
	require.Contains(t, ev.Error, "invalid character")

	// A well-formed message that is not a request.
	a.answer(&agentproto.Message{Type: agentproto.TypeReply, ID: 8})
	reply = nextMessage(t, a.out)
	require.Equal(t, uint64(8), reply.ID)
	require.Contains(t, reply.Error, "the agent takes requests only")
}
