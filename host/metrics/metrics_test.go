package metrics_test

import (
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	promodel "github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/metrics"
	"github.com/vertigo-autoscaler/vertigo/host/model"
)

type scrape map[string]*dto.MetricFamily

// scrapeOf reads the metrics the way Prometheus does: through the handler,
// in the text format.
func scrapeOf(t *testing.T, m *metrics.Metrics) scrape {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	parser := expfmt.NewTextParser(promodel.UTF8Validation)
	families, err := parser.TextToMetricFamilies(rec.Body)
	require.NoError(t, err)
	return families
}

// find returns the series of family name whose labels are exactly labels,
// or nil.
func (s scrape) find(name string, labels map[string]string) *dto.Metric {
	f := s[name]
	if f == nil {
		return nil
	}
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if maps.Equal(got, labels) {
			return m
		}
	}
	return nil
}

func (s scrape) value(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	m := s.find(name, labels)
	require.NotNil(t, m, "no series %s%v", name, labels)
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	}
	t.Fatalf("%s%v is neither a counter nor a gauge", name, labels)
	return 0
}

func TestEveryOutcomeAndGrantResultIsExportedBeforeItHappens(t *testing.T) {
	s := scrapeOf(t, metrics.New())
	for _, o := range []string{"unchanged", "grown", "grown_partial", "shrunk", "refused_by_guest",
		"denied", "clamped", "malformed", "error", "skipped"} {
		require.Zero(t, s.value(t, "vertigo_decisions_total", map[string]string{"outcome": o}), o)
	}
	for _, r := range []string{"full", "partial", "none"} {
		require.Zero(t, s.value(t, "vertigo_grants_total", map[string]string{"result": r}), r)
	}
	require.Zero(t, s.value(t, "vertigo_denials_total", nil))
}

func TestDecisionsAreCountedByOutcomeAndUnknownOnesAsError(t *testing.T) {
	m := metrics.New()
	m.Decision(metrics.OutcomeGrown)
	m.Decision(metrics.OutcomeGrown)
	m.Decision(metrics.OutcomeShrunk)
	m.Decision("grwon")

	s := scrapeOf(t, m)
	outcome := func(o string) float64 {
		return s.value(t, "vertigo_decisions_total", map[string]string{"outcome": o})
	}
	require.Equal(t, 2.0, outcome("grown"))
	require.Equal(t, 1.0, outcome("shrunk"))
	require.Equal(t, 1.0, outcome("error"))
	require.Zero(t, outcome("unchanged"))
	require.Nil(t, s.find("vertigo_decisions_total", map[string]string{"outcome": "grwon"}))
}

func TestGrantsAndDenials(t *testing.T) {
	m := metrics.New()
	m.Grant(metrics.GrantFull)
	m.Grant(metrics.GrantPartial)
	m.Grant(metrics.GrantPartial)
	m.Grant("most")
	m.Denial()

	s := scrapeOf(t, m)
	result := func(r string) float64 {
		return s.value(t, "vertigo_grants_total", map[string]string{"result": r})
	}
	require.Equal(t, 1.0, result("full"))
	require.Equal(t, 2.0, result("partial"))
	require.Equal(t, 1.0, result("none"))
	require.Equal(t, 1.0, s.value(t, "vertigo_denials_total", nil))
}

func TestPluginRestartsByResult(t *testing.T) {
	m := metrics.New()
	m.PluginRestart("scaler", nil)
	m.PluginRestart("scaler", errors.New("handshake failed"))
	m.PluginRestart("scaler", errors.New("handshake failed"))
	m.PluginRestart("placement", nil)

	s := scrapeOf(t, m)
	restarts := func(plugin, result string) float64 {
		return s.value(t, "vertigo_plugin_restarts_total", map[string]string{"plugin": plugin, "result": result})
	}
	require.Equal(t, 1.0, restarts("scaler", "ok"))
	require.Equal(t, 2.0, restarts("scaler", "failed"))
	require.Equal(t, 1.0, restarts("placement", "ok"))
	require.Nil(t, s.find("vertigo_plugin_restarts_total", map[string]string{"plugin": "placement", "result": "failed"}))
}

func TestPluginCallsHistogramSpans50usTo5s(t *testing.T) {
	m := metrics.New()
	m.ObservePluginCall("scaler", "Decide", 100*time.Microsecond)
	m.ObservePluginCall("scaler", "Decide", 2*time.Second)
	m.ObservePluginCall("scaler", "Decide", 10*time.Second)

	h := scrapeOf(t, m).find("vertigo_plugin_calls_seconds", map[string]string{"plugin": "scaler", "method": "Decide"})
	require.NotNil(t, h)
	require.Equal(t, uint64(3), h.GetHistogram().GetSampleCount())
	require.InDelta(t, 12.0001, h.GetHistogram().GetSampleSum(), 1e-9)

	// The text format ends with the +Inf bucket.
	buckets := h.GetHistogram().GetBucket()
	last := buckets[len(buckets)-2]
	require.InDelta(t, 50e-6, buckets[0].GetUpperBound(), 1e-12)
	require.InDelta(t, 5, last.GetUpperBound(), 1e-9)
	require.Zero(t, buckets[0].GetCumulativeCount(), "100us is above the first bucket")
	require.Equal(t, uint64(1), buckets[1].GetCumulativeCount(), "100us is in the second bucket")
	require.Equal(t, uint64(2), last.GetCumulativeCount(), "10s is above the last bucket")
}

func TestTickHistogram(t *testing.T) {
	m := metrics.New()
	m.ObserveTick(30 * time.Millisecond)
	m.ObserveTick(70 * time.Millisecond)

	h := scrapeOf(t, m).find("vertigo_tick_seconds", nil)
	require.NotNil(t, h)
	require.Equal(t, uint64(2), h.GetHistogram().GetSampleCount())
	require.InDelta(t, 0.1, h.GetHistogram().GetSampleSum(), 1e-9)
}

func TestSetFleetReplacesTheFleetGauges(t *testing.T) {
	m := metrics.New()
	gib := uint64(1) << 30
	m.SetFleet(
		[]model.VM{
			{Name: "a", Phase: model.PhaseRunning},
			{Name: "b", Phase: model.PhaseRunning},
			{Name: "c", Phase: model.PhasePending},
		},
		[]metrics.NodeUsage{
			{Name: "n1", Capacity: model.Size{VCPUMilli: 8000, MemoryBytes: 32 * gib},
				Reserved: model.Size{VCPUMilli: 2000, MemoryBytes: 24 * gib}},
			{Name: "n2", Capacity: model.Size{VCPUMilli: 4000},
				Reserved: model.Size{VCPUMilli: 4000}},
		})

	s := scrapeOf(t, m)
	vms := func(phase string) float64 { return s.value(t, "vertigo_vms", map[string]string{"phase": phase}) }
	ratio := func(node, resource string) float64 {
		return s.value(t, "vertigo_node_reserved_ratio", map[string]string{"node": node, "resource": resource})
	}
	require.Equal(t, 2.0, vms("running"))
	require.Equal(t, 1.0, vms("pending"))
	require.Zero(t, vms("failed"), "every phase is exported, at zero when empty")
	require.Equal(t, 0.25, ratio("n1", "vcpu"))
	require.Equal(t, 0.75, ratio("n1", "memory"))
	require.Equal(t, 1.0, ratio("n2", "vcpu"))
	require.Nil(t, s.find("vertigo_node_reserved_ratio", map[string]string{"node": "n2", "resource": "memory"}),
		"no memory capacity: no ratio rather than +Inf")

	m.SetFleet([]model.VM{{Name: "a", Phase: model.PhaseFailed}}, []metrics.NodeUsage{
		{Name: "n1", Capacity: model.Size{VCPUMilli: 8000}, Reserved: model.Size{VCPUMilli: 6000}},
		{Name: "n1", Capacity: model.Size{VCPUMilli: 8000}, Reserved: model.Size{VCPUMilli: 4000}},
	})
	s = scrapeOf(t, m)
	require.Zero(t, vms("running"))
	require.Equal(t, 1.0, vms("failed"))
	require.Equal(t, 0.5, ratio("n1", "vcpu"), "a node named twice: the last one wins, the scrape still works")
	require.Nil(t, s.find("vertigo_node_reserved_ratio", map[string]string{"node": "n2", "resource": "vcpu"}),
		"a node that left the fleet leaves the metrics")
}

func TestRuntimeAndProcessCollectorsAreRegistered(t *testing.T) {
	s := scrapeOf(t, metrics.New())
	require.Contains(t, s, "go_goroutines")
	require.Contains(t, s, "process_cpu_seconds_total")
}

func TestEachMetricsHasItsOwnRegistry(t *testing.T) {
	a, b := metrics.New(), metrics.New()
	a.Denial()
	require.Equal(t, 1.0, scrapeOf(t, a).value(t, "vertigo_denials_total", nil))
	require.Zero(t, scrapeOf(t, b).value(t, "vertigo_denials_total", nil))
}

func TestConcurrentUpdatesAndScrapes(t *testing.T) {
	m := metrics.New()
	const writers, rounds = 4, 50
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for i := range rounds {
				m.Decision(metrics.OutcomeUnchanged)
				m.SetFleet([]model.VM{{Phase: model.PhaseRunning}}, []metrics.NodeUsage{
					{Name: "n", Capacity: model.Size{VCPUMilli: 1000}, Reserved: model.Size{VCPUMilli: int64(i)}},
				})
			}
		})
	}
	wg.Go(func() {
		for range rounds {
			scrapeOf(t, m)
		}
	})
	wg.Wait()
	require.Equal(t, float64(writers*rounds),
		scrapeOf(t, m).value(t, "vertigo_decisions_total", map[string]string{"outcome": "unchanged"}))
}
