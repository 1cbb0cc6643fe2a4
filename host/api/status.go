// Package api is the host's local HTTP/JSON API: the fleet's status for
// `vertigo status`, a tick on demand, plugin restarts, metrics and a health
// check. It listens on loopback only; anything that changes state needs the
// bearer token from the host's token file.
package api

import (
	"context"
	"errors"
	"time"

	"github.com/vertigo-autoscaler/vertigo/host/history"
	"github.com/vertigo-autoscaler/vertigo/host/model"
)

// Status is a snapshot of the fleet as the host sees it.
type Status struct {
	Time       time.Time      `json:"time"`
	Nodes      []NodeStatus   `json:"nodes"`
	VMs        []model.VM     `json:"vms"`
	Plugins    []PluginStatus `json:"plugins"`
	Migrations []Migration    `json:"migrations"` // planned or active
	// Usage is what each running VM's guest last reported, by VM name.
	Usage map[string]Usage `json:"usage,omitempty"`
}

// Usage is a guest's latest report.
type Usage struct {
	Load1           float64 `json:"load1"`
	OnlineVCPUMilli int64   `json:"online_vcpu_milli"`
	MemoryUsed      uint64  `json:"memory_used"`
	OnlineMemory    uint64  `json:"online_memory"`
	UptimeNanos     int64   `json:"uptime_ns"`
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
	// Progress of a running or finished migration.
	TransferredBytes uint64 `json:"transferred_bytes,omitempty"`
	RemainingBytes   uint64 `json:"remaining_bytes,omitempty"`
	BytesPerSecond   uint64 `json:"bytes_per_second,omitempty"`
	ElapsedNanos     int64  `json:"elapsed_ns,omitempty"`
	DowntimeNanos    int64  `json:"downtime_ns,omitempty"`
	Error            string `json:"error,omitempty"`
}

// LoadRequest asks a VM's guest to generate load, so that scaling can be
// watched.
type LoadRequest struct {
	CPUWorkers  uint32 `json:"cpu_workers"`
	MemoryBytes uint64 `json:"memory_bytes"`
	DurationNs  int64  `json:"duration_ns"`
}

// MigrateRequest asks for a VM to be moved now.
type MigrateRequest struct {
	To string `json:"to"`
}

// ErrNotFound is what a Backend returns (possibly wrapped) for a name it
// does not know; the API answers 404. The Client's errors match it too.
var ErrNotFound = errors.New("not found")

// ErrInvalid is what a Backend returns (possibly wrapped) for a request it
// refuses as it is, such as a load the guest cannot hold; the API answers
// 400.
var ErrInvalid = errors.New("invalid request")

// Backend is the host behind the API.
type Backend interface {
	Status(ctx context.Context) (Status, error)
	// Tick runs one control-loop pass now.
	Tick(ctx context.Context) error
	RestartPlugin(ctx context.Context, name string) error
	// LoadVM has the VM's guest generate load.
	LoadVM(ctx context.Context, name string, req LoadRequest) error
	// MigrateVM moves the VM, calling progress as it goes; it returns when
	// the VM runs on the target or the move failed.
	MigrateVM(ctx context.Context, name, to string, progress func(Migration)) error
	// History is what was recorded after since (everything for the zero time).
	History(ctx context.Context, since time.Time) (history.Snapshot, error)
}
