package store

import "github.com/vertigo-autoscaler/vertigo/host/model"

// Memory is an in-memory Store with the same semantics as File, for tests
// of other packages.
type Memory struct{ core }

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	m := &Memory{}
	m.init(nil, 0, map[string]model.Node{}, map[string]model.VM{})
	return m
}

// Close ends the watchers; the store refuses calls afterwards.
func (m *Memory) Close() error {
	m.shut()
	return nil
}
