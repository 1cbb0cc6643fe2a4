package main

import (
	"bytes"
	"sync"

	"github.com/vertigo-autoscaler/vertigo/plugins/scaler/policy"
)

// stateCache remembers, per VM, the state bytes the plugin's last decision
// returned and the state they encode. The host hands those bytes back on
// the next call, and decoding and encoding them as JSON cost more than the
// decision itself: a trace replay makes millions of decisions. It is only
// a cache, matched on the exact bytes, so a restarted plugin or a host
// with other bytes gets the same decisions, decoded afresh.
type stateCache struct {
	mu sync.Mutex
	// last is replaced whole by each call and never changed after, so a
	// call reads it without the lock and the cache holds the VMs of one
	// call at most.
	last map[string]cachedState
}

type cachedState struct {
	encoded []byte
	state   policy.State
}

func (c *stateCache) snapshot() map[string]cachedState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

func (c *stateCache) replace(m map[string]cachedState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = m
}

// lookup is the cached state of vm when b is the encoding the plugin
// returned for it last.
func lookup(prev map[string]cachedState, vm string, b []byte) (cachedState, bool) {
	c, ok := prev[vm]
	return c, ok && bytes.Equal(c.encoded, b)
}
