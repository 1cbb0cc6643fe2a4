package api_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/api"
	"github.com/vertigo-autoscaler/vertigo/host/model"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))
}

func TestRenderStatus(t *testing.T) {
	gib := uint64(1) << 30
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	decided := func(ago time.Duration, reason, outcome string) *model.Decision {
		return &model.Decision{At: now.Add(-ago), Reason: reason, Outcome: outcome}
	}
	size := func(milli int64, mem uint64) model.Size { return model.Size{VCPUMilli: milli, MemoryBytes: mem} }
	s := api.Status{
		Time: now.Add(-2 * time.Second),
		// Out of order on purpose: the table sorts by name.
		Nodes: []api.NodeStatus{
			{Name: "node-b", Capacity: size(4000, 16*gib), Watermark: 0.9},
			{Name: "node-a", Capacity: size(8000, 32*gib), Reserved: size(6250, 12*gib), Watermark: 0.9,
				VMs: []string{"pg-orders", "pg-users"}},
		},
		VMs: []model.VM{
			{Name: "pg-users", Node: "node-a", Phase: model.PhaseRunning, Size: size(2000, 8*gib), Reserved: size(2000, 8*gib),
				LastDecision: decided(95*time.Minute, "memory 71% of 8GiB", "unchanged")},
			{Name: "pg-orders", Node: "node-a", Address: "10.77.0.3/24", Phase: model.PhaseRunning, Size: size(4000, 4*gib), Reserved: size(4250, 4*gib),
				LastDecision: decided(12*time.Second, "load1 3.9\tover 4 vCPU\n(target 0.9)", "grown_partial")},
			{Name: "pg-new", Phase: model.PhasePending, Size: size(250, gib)},
			{Name: "pg-old", Node: "node-b", Phase: model.PhaseStopped, Size: size(1000, 2*gib),
				LastDecision: decided(50*time.Hour, "guest refused", "refused_by_guest")},
		},
		Plugins: []api.PluginStatus{
			{Name: "scaler", Kind: "scaler", Version: "0.1.0", PID: 4242, Restarts: 0, Healthy: true},
			{Name: "placement", Kind: "placement", Version: "0.1.0", PID: 0, Restarts: 3, Healthy: false},
		},
		Migrations: []api.Migration{
			{VM: "pg-users", From: "node-a", To: "node-b", Reason: "node-a above watermark", State: "planned"},
			{VM: "pg-orders", From: "node-a", To: "node-b", Reason: "node-a above watermark", State: "running",
				TransferredBytes: gib, RemainingBytes: 3 * gib, BytesPerSecond: gib / 2},
		},
		Usage: map[string]api.Usage{
			"pg-orders": {Load1: 3.9, OnlineVCPUMilli: 4000, MemoryUsed: 3 * gib, OnlineMemory: 4 * gib, UptimeNanos: int64(26 * time.Hour)},
		},
	}

	var out bytes.Buffer
	api.RenderStatus(&out, s, now)
	golden(t, "status.golden", out.Bytes())

	// The same status with its rows in another order prints the same.
	s.VMs[0], s.VMs[3] = s.VMs[3], s.VMs[0]
	s.Plugins[0], s.Plugins[1] = s.Plugins[1], s.Plugins[0]
	var again bytes.Buffer
	api.RenderStatus(&again, s, now)
	require.Equal(t, out.String(), again.String())
}

func TestRenderEmptyStatus(t *testing.T) {
	var out bytes.Buffer
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	api.RenderStatus(&out, api.Status{Time: now}, now)
	golden(t, "empty.golden", out.Bytes())
}
