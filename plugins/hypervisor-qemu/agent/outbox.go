package main

import (
	"context"
	"sync"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentproto"
)

// outboxLimit bounds what waits for a slow or absent host; beyond it the
// oldest messages go, since the newest state matters most.
const outboxLimit = 256

// outbox decouples the agent's work from the port: onlining a CPU must
// never wait for the host to read. Events and replies queue in order;
// metrics are a single slot, the latest replacing the last unsent one.
type outbox struct {
	mu      sync.Mutex
	queue   []*agentproto.Message
	metrics *agentproto.Message
	ready   chan struct{}
}

func newOutbox() *outbox { return &outbox{ready: make(chan struct{}, 1)} }

func (o *outbox) wake() {
	select {
	case o.ready <- struct{}{}:
	default:
	}
}

// post queues an event or a reply.
func (o *outbox) post(m *agentproto.Message) {
	o.mu.Lock()
	if len(o.queue) == outboxLimit {
		o.queue = o.queue[1:]
	}
	o.queue = append(o.queue, m)
	o.mu.Unlock()
	o.wake()
}

// postMetrics replaces any unsent metrics.
func (o *outbox) postMetrics(m *agentproto.Message) {
	o.mu.Lock()
	o.metrics = m
	o.mu.Unlock()
	o.wake()
}

// restart begins a new host connection with hello: what was queued for the
// previous host (replies to its requests, events it missed) is dropped, as
// the hello carries the current state.
func (o *outbox) restart(hello *agentproto.Message) {
	o.mu.Lock()
	o.queue = []*agentproto.Message{hello}
	o.metrics = nil
	o.mu.Unlock()
	o.wake()
}

// next blocks for the next message to send: queued ones first, in order.
func (o *outbox) next(ctx context.Context) (*agentproto.Message, error) {
	for {
		o.mu.Lock()
		var m *agentproto.Message
		switch {
		case len(o.queue) > 0:
			m = o.queue[0]
			o.queue = o.queue[1:]
		case o.metrics != nil:
			m, o.metrics = o.metrics, nil
		}
		o.mu.Unlock()
		if m != nil {
			return m, nil
		}
		select {
		case <-o.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
