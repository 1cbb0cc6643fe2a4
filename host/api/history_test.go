package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/api"
	"github.com/vertigo-autoscaler/vertigo/host/history"
	"github.com/vertigo-autoscaler/vertigo/host/model"
)

// History makes fakeBackend a Backend for the tests that do not read
// history; historyBackend overrides it.
func (b *fakeBackend) History(context.Context, time.Time) (history.Snapshot, error) {
	return history.Snapshot{}, errors.New("this fake has no history")
}

// historyBackend serves a recorded fleet: two VMs over a few minutes.
type historyBackend struct {
	*fakeBackend
	hist *history.History
	err  error

	mu     sync.Mutex
	asked  []time.Time // the since of every History call
	onPoll func()      // runs once, at the first History call with a since
}

func (b *historyBackend) History(_ context.Context, since time.Time) (history.Snapshot, error) {
	b.mu.Lock()
	b.asked = append(b.asked, since)
	if hook := b.onPoll; hook != nil && !since.IsZero() {
		b.onPoll = nil
		hook()
	}
	b.mu.Unlock()
	return b.hist.Since(since), b.err
}

func (b *historyBackend) sinces() []time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]time.Time(nil), b.asked...)
}

// fleetStart has nanoseconds, which a page rounding times to milliseconds
// would lose.
var fleetStart = time.Date(2026, 11, 27, 22, 0, 0, 123456789, time.UTC)

const (
	fleetPoints = 36 // three minutes, one point every 5 s
	gib         = uint64(1) << 30
)

func fleetAt(i int) time.Time { return fleetStart.Add(time.Duration(i) * 5 * time.Second) }

// pg1Load is a ramp up and back down, so that its plot has a shape.
func pg1Load(i int) float64 {
	return 0.2 + 1.6*float64(min(i, fleetPoints-i))/float64(fleetPoints/2)
}

// newHistoryBackend records pg-1 growing under load then shrinking, and
// pg-2 refusing a shrink then moving from node-a to node-b.
func newHistoryBackend() *historyBackend {
	h := history.New(history.Limits{})
	for i := range fleetPoints {
		pg1 := model.Size{VCPUMilli: 1000, MemoryBytes: 2 * gib}
		if i >= 12 && i < 30 {
			pg1 = model.Size{VCPUMilli: 2000, MemoryBytes: 4 * gib}
		}
		h.AddPoint("pg-1", history.Point{At: fleetAt(i), Node: "node-a", Phase: model.PhaseRunning, Size: pg1, Reserved: pg1,
			Usage: &history.Usage{OnlineVCPUMilli: pg1.VCPUMilli, OnlineMemory: pg1.MemoryBytes, Load1: pg1Load(i), MemoryUsed: gib + uint64(i)<<24, CPUPressure: 4.5}})
		node := "node-a"
		if i >= 24 {
			node = "node-b"
		}
		pg2 := model.Size{VCPUMilli: 2000, MemoryBytes: 4 * gib}
		p := history.Point{At: fleetAt(i), Node: node, Phase: model.PhaseRunning, Size: pg2, Reserved: pg2}
		if i >= 2 { // the guest's first report comes after boot
			p.Usage = &history.Usage{OnlineVCPUMilli: 2000, OnlineMemory: 4 * gib, Load1: 0.3, MemoryUsed: 3 * gib}
		}
		h.AddPoint("pg-2", p)
	}
	h.AddDecision("pg-1", model.Decision{At: fleetAt(12), Goal: model.Size{VCPUMilli: 2000, MemoryBytes: 4 * gib}, Reason: "cpu: load1 1.07 over target 0.9", Outcome: "grown"})
	h.AddDecision("pg-1", model.Decision{At: fleetAt(20), Goal: model.Size{VCPUMilli: 2000, MemoryBytes: 4 * gib}, Reason: "within target", Outcome: "unchanged"})
	h.AddDecision("pg-1", model.Decision{At: fleetAt(30), Goal: model.Size{VCPUMilli: 1000, MemoryBytes: 2 * gib}, Reason: "cpu: load1 0.4 under target for 60s", Outcome: "shrunk"})
	h.AddDecision("pg-2", model.Decision{At: fleetAt(18), Goal: model.Size{VCPUMilli: 1000, MemoryBytes: 2 * gib}, Reason: "guest refused: working set needs 3GiB", Outcome: "refused_by_guest"})
	h.AddMigration("pg-2", history.Migration{At: fleetAt(24), From: "node-a", To: "node-b", Reason: "node-a above its watermark", State: "completed",
		ElapsedNanos: int64(8 * time.Second), DowntimeNanos: int64(40 * time.Millisecond), TransferredBytes: 3 * gib})

	size := func(vcpu int64, mem uint64) model.Size { return model.Size{VCPUMilli: vcpu, MemoryBytes: mem} }
	bounds := model.Bounds{Min: size(1000, gib), Max: size(4000, 8*gib), Unit: size(1000, gib)}
	return &historyBackend{hist: h, fakeBackend: &fakeBackend{status: api.Status{
		Time: fleetAt(fleetPoints - 1),
		Nodes: []api.NodeStatus{
			{Name: "node-a", Capacity: size(8000, 16*gib), Reserved: size(1000, 2*gib), Watermark: 0.9, VMs: []string{"pg-1"}},
			{Name: "node-b", Capacity: size(8000, 16*gib), Reserved: size(2000, 4*gib), Watermark: 0.9, VMs: []string{"pg-2"}},
		},
		VMs: []model.VM{
			{Name: "pg-1", Node: "node-a", Phase: model.PhaseRunning, Bounds: bounds, Size: size(1000, 2*gib), Reserved: size(1000, 2*gib)},
			{Name: "pg-2", Node: "node-b", Phase: model.PhaseRunning, Bounds: bounds, Size: size(2000, 4*gib), Reserved: size(2000, 4*gib)},
		},
		Plugins: []api.PluginStatus{{Name: "scaler", Kind: "scaler", PID: 10, Healthy: true}, {Name: "placement", Kind: "placement", PID: 11, Healthy: true}},
		Usage: map[string]api.Usage{
			"pg-1": {Load1: pg1Load(fleetPoints - 1), OnlineVCPUMilli: 1000, MemoryUsed: gib, OnlineMemory: 2 * gib},
			"pg-2": {Load1: 0.3, OnlineVCPUMilli: 2000, MemoryUsed: 3 * gib, OnlineMemory: 4 * gib},
		},
	}}}
}

func TestHistoryIsServedWithDocumentedFields(t *testing.T) {
	s := startServer(t, newHistoryBackend())
	r := send(t, s, http.MethodGet, "/v1/history", "", nil)
	require.Equal(t, http.StatusOK, r.code, r.body)
	require.Equal(t, "application/json", r.header.Get("Content-Type"))

	// Field names are the page's contract: decode loosely, by name.
	var body struct {
		Latest string `json:"latest"`
		Limits struct {
			MaxPoints int   `json:"max_points"`
			MaxAgeNs  int64 `json:"max_age_ns"`
		} `json:"limits"`
		VMs []struct {
			VM     string `json:"vm"`
			Points []struct {
				At    string     `json:"at"`
				Node  string     `json:"node"`
				Phase string     `json:"phase"`
				Size  model.Size `json:"size"`
				Usage *struct {
					Load1           float64 `json:"load1"`
					MemoryUsed      uint64  `json:"memory_used"`
					OnlineVCPUMilli int64   `json:"online_vcpu_milli"`
					CPUPressure     float64 `json:"cpu_pressure"`
				} `json:"usage"`
			} `json:"points"`
			Decisions []struct {
				Reason  string `json:"reason"`
				Outcome string `json:"outcome"`
			} `json:"decisions"`
			Migrations []struct {
				From, To, State string
				DowntimeNs      int64 `json:"downtime_ns"`
			} `json:"migrations"`
		} `json:"vms"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &body))
	require.Equal(t, fleetAt(fleetPoints-1).Format(time.RFC3339Nano), body.Latest)
	require.Equal(t, history.DefaultLimits.Points, body.Limits.MaxPoints)
	require.Equal(t, history.DefaultLimits.Age.Nanoseconds(), body.Limits.MaxAgeNs)
	require.Len(t, body.VMs, 2)
	pg1, pg2 := body.VMs[0], body.VMs[1]
	require.Equal(t, "pg-1", pg1.VM)
	require.Len(t, pg1.Points, fleetPoints)
	require.Equal(t, "node-a", pg1.Points[12].Node)
	require.Equal(t, "running", pg1.Points[12].Phase)
	require.Equal(t, int64(2000), pg1.Points[12].Size.VCPUMilli)
	require.InDelta(t, pg1Load(12), pg1.Points[12].Usage.Load1, 1e-9)
	require.Equal(t, 4.5, pg1.Points[12].Usage.CPUPressure)
	require.Equal(t, "cpu: load1 1.07 over target 0.9", pg1.Decisions[0].Reason)
	require.Nil(t, pg2.Points[0].Usage, "no usage before the guest reports")
	require.Equal(t, "node-b", pg2.Migrations[0].To)
	require.Equal(t, int64(40e6), pg2.Migrations[0].DowntimeNs)
}

func TestHistorySinceReturnsWhatFollows(t *testing.T) {
	b := newHistoryBackend()
	s := startServer(t, b)
	since := fleetAt(fleetPoints - 3)
	r := send(t, s, http.MethodGet, "/v1/history?since="+url.QueryEscape(since.Format(time.RFC3339Nano)), "", nil)
	require.Equal(t, http.StatusOK, r.code, r.body)
	var snap history.Snapshot
	require.NoError(t, json.Unmarshal([]byte(r.body), &snap))
	require.Len(t, snap.VMs, 2)
	for _, vm := range snap.VMs {
		require.Len(t, vm.Points, 2, vm.VM)
		require.True(t, vm.Points[0].At.Equal(fleetAt(fleetPoints-2)), vm.VM)
	}
	require.Empty(t, snap.VMs[0].Decisions, "pg-1 decided last at point 30")
	require.True(t, b.sinces()[0].Equal(since), "the nanoseconds reach the backend")
}

func TestHistoryRefusesBadParameters(t *testing.T) {
	s := startServer(t, newHistoryBackend())
	for query, want := range map[string]string{
		"since=yesterday":  `since: "yesterday" is not an RFC 3339 time`,
		"since=1764280800": `since: "1764280800" is not an RFC 3339 time`,
		"since=":           `since: "" is not an RFC 3339 time`,
		"vm=pg-1":          "vm: unknown parameter",
		"since=2026-11-27T22:00:00Z&since=2026-11-27T22:00:00Z": "since: given 2 times",
	} {
		r := send(t, s, http.MethodGet, "/v1/history?"+query, "", nil)
		require.Equal(t, http.StatusBadRequest, r.code, query)
		require.Contains(t, r.errorMessage(t), want, query)
	}
}

func TestHistoryBackendErrorIsA500(t *testing.T) {
	b := newHistoryBackend()
	b.err = fmt.Errorf("history unavailable")
	s := startServer(t, b)
	r := send(t, s, http.MethodGet, "/v1/history", "", nil)
	require.Equal(t, http.StatusInternalServerError, r.code)
	require.Contains(t, r.errorMessage(t), "history unavailable")
}
