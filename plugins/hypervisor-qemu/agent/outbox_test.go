package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentproto"
)

func TestOutboxQueueBeforeLatestMetrics(t *testing.T) {
	o := newOutbox()
	o.postMetrics(&agentproto.Message{Type: agentproto.TypeMetrics, TUnixNano: 1})
	o.post(&agentproto.Message{Type: agentproto.TypeEvent, Event: "a"})
	o.postMetrics(&agentproto.Message{Type: agentproto.TypeMetrics, TUnixNano: 2})
	o.post(&agentproto.Message{Type: agentproto.TypeReply, ID: 1})

	require.Equal(t, "a", nextMessage(t, o).Event)
	require.Equal(t, uint64(1), nextMessage(t, o).ID)
	require.Equal(t, int64(2), nextMessage(t, o).TUnixNano, "only the latest metrics are sent")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := o.next(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestOutboxDropsOldestWhenFull(t *testing.T) {
	o := newOutbox()
	for i := range outboxLimit + 3 {
		o.post(&agentproto.Message{Type: agentproto.TypeReply, ID: uint64(i + 1)})
	}
	require.Equal(t, uint64(4), nextMessage(t, o).ID)
}

func TestOutboxRestartPutsHelloFirst(t *testing.T) {
	o := newOutbox()
	o.post(&agentproto.Message{Type: agentproto.TypeReply, ID: 9})
	o.postMetrics(&agentproto.Message{Type: agentproto.TypeMetrics, TUnixNano: 1})
	o.restart(&agentproto.Message{Type: agentproto.TypeHello, Version: 1})
	o.post(&agentproto.Message{Type: agentproto.TypeEvent, Event: "after"})

	require.Equal(t, agentproto.TypeHello, nextMessage(t, o).Type)
	require.Equal(t, "after", nextMessage(t, o).Event, "what was queued for the previous host is gone")
}

func TestOutboxNextWaitsForPost(t *testing.T) {
	o := newOutbox()
	got := make(chan *agentproto.Message)
	go func() {
		m, _ := o.next(context.Background())
		got <- m
	}()
	o.post(&agentproto.Message{Type: agentproto.TypeReply, ID: 5})
	select {
	case m := <-got:
		require.Equal(t, uint64(5), m.ID)
	case <-time.After(5 * time.Second):
		t.Fatal("next did not wake on post")
	}
}
