package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/api"
	"github.com/vertigo-autoscaler/vertigo/host/history"
	"github.com/vertigo-autoscaler/vertigo/host/model"
)

// Every pass adds a point per VM through the API the page reads, with the
// node placement chose.
func TestTickRecordsAPointPerVM(t *testing.T) {
	h := start(t, load(t, writeConfig(t, t.TempDir(), defaultFixture())))
	defer h.Close()
	ctx := context.Background()
	require.NoError(t, h.Tick(ctx))
	require.NoError(t, h.Tick(ctx))

	snap, err := h.History(ctx, time.Time{})
	require.NoError(t, err)
	require.Len(t, snap.VMs, 2)
	for _, s := range snap.VMs {
		require.Len(t, s.Points, 2, s.VM)
		stored := vm(t, h, s.VM)
		require.Equal(t, stored.Node, s.Points[1].Node, s.VM)
		require.Equal(t, stored.Size, s.Points[1].Size, s.VM)
	}
	later, err := h.History(ctx, snap.Latest)
	require.NoError(t, err)
	require.Empty(t, later.VMs[0].Points)
}

// The loop keeps only a VM's last decision and migration, and offers them
// on every pass: each is recorded once, and again only when it changes.
func TestHistoryRecordsEventsOncePerChange(t *testing.T) {
	h := &Host{history: history.New(history.Limits{})}
	t0 := time.Date(2026, 11, 27, 22, 0, 0, 0, time.UTC)
	grown := &model.Decision{At: t0, Goal: model.Size{VCPUMilli: 2000}, Reason: "load", Outcome: "grown"}
	st := api.Status{
		Time:       t0,
		VMs:        []model.VM{{Name: "pg-1", Node: "node-a", Phase: model.PhaseRunning, LastDecision: grown}},
		Migrations: []api.Migration{{VM: "pg-1", From: "node-a", To: "node-b", State: "running", ElapsedNanos: 1e9}},
	}
	h.recordHistory(st)
	st.Time = t0.Add(5 * time.Second)
	h.recordHistory(st) // the same decision and migration, a pass later
	st.Time = t0.Add(10 * time.Second)
	st.VMs[0].Node = "node-b"
	st.Migrations[0].State, st.Migrations[0].DowntimeNanos = "completed", 30e6
	h.recordHistory(st)
	h.recordHistory(st) // a status recorded twice adds nothing

	snap := h.history.Since(time.Time{})
	require.Len(t, snap.VMs, 1)
	s := snap.VMs[0]
	require.Len(t, s.Points, 3)
	require.Equal(t, "node-b", s.Points[2].Node)
	require.Nil(t, s.Points[0].Usage, "no guest buffer, no usage")
	require.Len(t, s.Decisions, 1)
	require.Equal(t, "load", s.Decisions[0].Reason)
	require.Len(t, s.Migrations, 2)
	require.Equal(t, "completed", s.Migrations[1].State)
	require.Equal(t, int64(30e6), s.Migrations[1].DowntimeNanos)
}
