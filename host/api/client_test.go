package api_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/api"
	"github.com/vertigo-autoscaler/vertigo/host/model"
)

func fullStatus() api.Status {
	at := time.Date(2026, 11, 27, 9, 59, 18, 0, time.UTC)
	gib := uint64(1) << 30
	return api.Status{
		Time: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
		Nodes: []api.NodeStatus{{
			Name: "n1", Capacity: model.Size{VCPUMilli: 8000, MemoryBytes: 32 * gib},
			Reserved: model.Size{VCPUMilli: 2500, MemoryBytes: 10 * gib}, Watermark: 0.9, VMs: []string{"pg-1"},
		}},
		VMs: []model.VM{{
			Name: "pg-1", Node: "n1", Phase: model.PhaseRunning,
			Bounds: model.Bounds{
				Min:  model.Size{VCPUMilli: 250, MemoryBytes: gib},
				Max:  model.Size{VCPUMilli: 4000, MemoryBytes: 16 * gib},
				Unit: model.Size{VCPUMilli: 250, MemoryBytes: gib},
			},
			Reserved:    model.Size{VCPUMilli: 2500, MemoryBytes: 10 * gib},
			Size:        model.Size{VCPUMilli: 2000, MemoryBytes: 8 * gib},
			ScalerState: []byte{1, 2, 3}, DownscaleRefusals: 2, LastRefusal: at.Add(-time.Hour),
			LastDecision: &model.Decision{At: at, Goal: model.Size{VCPUMilli: 2500, MemoryBytes: 10 * gib},
				Reason: "load 2.2 over 2 vCPU", Outcome: "grown"},
			Handle: []byte("qemu:1234"), Message: "resizing", Version: 7,
		}},
		Plugins: []api.PluginStatus{{Name: "scaler", Kind: "scaler", Version: "0.1.0", PID: 4242,
			Restarts: 1, Healthy: true, Capabilities: []string{"batch"}}},
		Migrations: []api.Migration{{VM: "pg-2", From: "n1", To: "n2", Reason: "n1 above watermark", State: "planned"}},
	}
}

func TestClientRoundTrip(t *testing.T) {
	b := &fakeBackend{status: fullStatus(), plugins: []string{"scaler", "odd/name"}}
	s := startServer(t, b)
	c := &api.Client{Addr: s.Addr(), Token: testToken}
	ctx := context.Background()

	got, err := c.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, fullStatus(), got)

	require.NoError(t, c.Tick(ctx))
	require.Equal(t, 1, b.tickCount())

	require.NoError(t, c.RestartPlugin(ctx, "scaler"))
	require.NoError(t, c.RestartPlugin(ctx, "odd/name"), "names are escaped into the path")
	require.Equal(t, []string{"scaler", "odd/name"}, b.restarts())

	err = c.RestartPlugin(ctx, "nope")
	require.ErrorIs(t, err, api.ErrNotFound)
	require.ErrorContains(t, err, `plugin "nope": not found`)
}

func TestClientErrorsCarryTheAPIsMessage(t *testing.T) {
	s := startServer(t, &fakeBackend{statusErr: errors.New("store unreadable")})
	ctx := context.Background()

	err := (&api.Client{Addr: s.Addr(), Token: "stale"}).Tick(ctx)
	var se *api.StatusError
	require.ErrorAs(t, err, &se)
	require.Equal(t, http.StatusUnauthorized, se.Code)
	require.Contains(t, se.Message, "api.token_file")
	require.NotErrorIs(t, err, api.ErrNotFound)

	_, err = (&api.Client{Addr: s.Addr()}).Status(ctx)
	require.ErrorAs(t, err, &se)
	require.Equal(t, http.StatusInternalServerError, se.Code)
	require.Equal(t, "store unreadable", se.Message)
}

func TestClientReportsAnAbsentServer(t *testing.T) {
	// A port that was just free: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	_, err = (&api.Client{Addr: addr}).Status(context.Background())
	require.ErrorContains(t, err, "connection refused")
}

func TestClientLoadAndMigrate(t *testing.T) {
	b := &fakeBackend{}
	s := startServer(t, b)
	c := &api.Client{Addr: s.Addr(), Token: testToken}
	ctx := context.Background()

	req := api.LoadRequest{CPUWorkers: 2, MemoryBytes: 1 << 30, DurationNs: 60e9}
	require.NoError(t, c.LoadVM(ctx, "pg-1", req))
	require.Equal(t, []api.LoadRequest{req}, b.loads)
	require.ErrorIs(t, c.LoadVM(ctx, "ghost", req), api.ErrNotFound)
	require.ErrorContains(t, c.LoadVM(ctx, "pg-1", api.LoadRequest{CPUWorkers: 1}), "duration_ns: must be > 0")

	var seen []api.Migration
	require.NoError(t, c.MigrateVM(ctx, "pg-1", "node-b", func(m api.Migration) { seen = append(seen, m) }))
	require.Len(t, seen, 2)
	require.Equal(t, "completed", seen[1].State)
	require.Equal(t, "100B/100B at 0B/s, downtime 30ms", api.ProgressText(seen[1]))

	err := c.MigrateVM(ctx, "pg-1", "nowhere", func(api.Migration) {})
	require.ErrorContains(t, err, `migration of pg-1 failed: no node "nowhere"`)
	require.ErrorContains(t, c.MigrateVM(ctx, "pg-1", "", func(api.Migration) {}), "to: name the target node")

	unauth := &api.Client{Addr: s.Addr()}
	require.Error(t, unauth.LoadVM(ctx, "pg-1", req), "changes need the token")
}

func TestInvalidRequestsAre400(t *testing.T) {
	b := &fakeBackend{loadErr: fmt.Errorf("the guest has 391MiB: %w", api.ErrInvalid)}
	s := startServer(t, b)
	c := &api.Client{Addr: s.Addr(), Token: testToken}
	err := c.LoadVM(context.Background(), "pg-1", api.LoadRequest{MemoryBytes: 1 << 30, DurationNs: 1e9})
	var se *api.StatusError
	require.ErrorAs(t, err, &se)
	require.Equal(t, 400, se.Code)
	require.Contains(t, se.Message, "the guest has 391MiB")
}
