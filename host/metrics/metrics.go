// Package metrics exposes what the host does as Prometheus metrics. It owns
// its registry rather than using the global one, so tests (and several hosts
// in one test binary) never share counters.
package metrics

import (
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Decision outcomes, the values of vertigo_decisions_total's outcome label.
const (
	OutcomeUnchanged      = "unchanged"
	OutcomeGrown          = "grown"
	OutcomeGrownPartial   = "grown_partial"
	OutcomeShrunk         = "shrunk"
	OutcomeRefusedByGuest = "refused_by_guest"
	OutcomeDenied         = "denied"
	OutcomeClamped        = "clamped"
	OutcomeMalformed      = "malformed"
	OutcomeError          = "error"
	OutcomeSkipped        = "skipped"
)

// Grant results, the values of vertigo_grants_total's result label.
const (
	GrantFull    = "full"
	GrantPartial = "partial"
	GrantNone    = "none"
)

var (
	outcomes = []string{
		OutcomeUnchanged, OutcomeGrown, OutcomeGrownPartial, OutcomeShrunk, OutcomeRefusedByGuest,
		OutcomeDenied, OutcomeClamped, OutcomeMalformed, OutcomeError, OutcomeSkipped,
	}
	grantResults = []string{GrantFull, GrantPartial, GrantNone}
)

// Metrics is the host's set of metrics. Its methods are safe for concurrent use.
type Metrics struct {
	registry     *prometheus.Registry
	handler      http.Handler
	decisions    *prometheus.CounterVec
	grants       *prometheus.CounterVec
	denials      prometheus.Counter
	restarts     *prometheus.CounterVec
	pluginCalls  *prometheus.HistogramVec
	tickDuration prometheus.Histogram
	fleet        *fleetCollector
}

// New registers every metric, plus the Go runtime and process collectors,
// in a fresh registry.
func New() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vertigo_decisions_total",
			Help: "Scaling decisions by outcome.",
		}, []string{"outcome"}),
		grants: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vertigo_grants_total",
			Help: "Growth requests answered by placement, by how much was granted.",
		}, []string{"result"}),
		denials: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vertigo_denials_total",
			Help: "Requests placement denied.",
		}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vertigo_plugin_restarts_total",
			Help: "Plugin restart attempts by plugin and result.",
		}, []string{"plugin", "result"}),
		pluginCalls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vertigo_plugin_calls_seconds",
			Help: "Duration of calls to plugins.",
			// A local gRPC round trip costs ~200us; a call past 5s is a hang.
			Buckets: prometheus.ExponentialBucketsRange(50e-6, 5, 11),
		}, []string{"plugin", "method"}),
		tickDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vertigo_tick_seconds",
			Help:    "Duration of one control-loop pass over the fleet.",
			Buckets: prometheus.ExponentialBucketsRange(1e-3, 60, 12),
		}),
		fleet: newFleetCollector(),
	}
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.decisions, m.grants, m.denials, m.restarts, m.pluginCalls, m.tickDuration, m.fleet,
	)
	// Zero series from the start, so rate() and alerts see every outcome
	// before it first happens.
	for _, o := range outcomes {
		m.decisions.WithLabelValues(o)
	}
	for _, r := range grantResults {
		m.grants.WithLabelValues(r)
	}
	m.handler = promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
	return m
}

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler { return m.handler }

// Decision counts one scaling decision. An outcome outside the Outcome*
// constants is a bug in the caller; it is counted as OutcomeError so that it
// shows up rather than vanishes.
func (m *Metrics) Decision(outcome string) {
	m.decisions.WithLabelValues(known(outcome, outcomes, OutcomeError)).Inc()
}

// Grant counts one answer to a growth request. A result outside the Grant*
// constants is counted as GrantNone: nothing that can be accounted for was
// granted.
func (m *Metrics) Grant(result string) {
	m.grants.WithLabelValues(known(result, grantResults, GrantNone)).Inc()
}

// Denial counts one request placement denied.
func (m *Metrics) Denial() { m.denials.Inc() }

// PluginRestart counts one restart attempt of a plugin; err is its outcome.
func (m *Metrics) PluginRestart(plugin string, err error) {
	result := "ok"
	if err != nil {
		result = "failed"
	}
	m.restarts.WithLabelValues(plugin, result).Inc()
}

// ObservePluginCall records how long one call to a plugin took.
func (m *Metrics) ObservePluginCall(plugin, method string, d time.Duration) {
	m.pluginCalls.WithLabelValues(plugin, method).Observe(d.Seconds())
}

// ObserveTick records how long one control-loop pass took.
func (m *Metrics) ObserveTick(d time.Duration) { m.tickDuration.Observe(d.Seconds()) }

// known keeps label values to a fixed set, so a caller's typo cannot mint
// new series.
func known(v string, set []string, fallback string) string {
	if slices.Contains(set, v) {
		return v
	}
	return fallback
}
