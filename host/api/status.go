// Package api is the host's local HTTP/JSON API: the fleet's status for
// `vertigo status`, a tick on demand, plugin restarts, metrics and a health
// check. It listens on loopback only; anything that changes state needs the
// bearer token from the host's token file.
package api

import (
	"context"
	"errors"
	"time"

	"github.com/vertigo-autoscaler/vertigo/host/model"
)

// Status is a snapshot of the fleet as the host sees it.
type Status struct {
	Time       time.Time      `json:"time"`
	Nodes      []NodeStatus   `json:"nodes"`
	VMs        []model.VM     `json:"vms"`
	Plugins    []PluginStatus `json:"plugins"`
	Migrations []Migration    `json:"migrations"` // planned or active
}

// NodeStatus is one node's capacity and what placement has reserved on it.
type NodeStatus struct {
	Name     string     `json:"name"`
	Capacity model.Size `json:"capacity"`
	Reserved model.Size `json:"reserved"`
	// Watermark is the fraction of capacity above which VMs move away.
	Watermark float64  `json:"watermark"`
	VMs       []string `json:"vms"`
}

// PluginStatus is one supervised plugin.
type PluginStatus struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Version string `json:"version"`
	// PID is 0 while the plugin is not running.
	PID          int      `json:"pid"`
	Restarts     int      `json:"restarts"`
	Healthy      bool     `json:"healthy"`
	Capabilities []string `json:"capabilities"`
}

// Migration is a planned or active move of a VM between nodes.
type Migration struct {
	VM     string `json:"vm"`
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason"`
	State  string `json:"state"`
}

// ErrNotFound is what a Backend returns (possibly wrapped) for a name it
// does not know; the API answers 404. The Client's errors match it too.
var ErrNotFound = errors.New("not found")

// Backend is the host behind the API.
type Backend interface {
	Status(ctx context.Context) (Status, error)
	// Tick runs one control-loop pass now.
	Tick(ctx context.Context) error
	RestartPlugin(ctx context.Context, name string) error
}
