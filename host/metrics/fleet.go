package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vertigo-autoscaler/vertigo/host/model"
)

// NodeUsage is one node's capacity and what placement has reserved on it.
type NodeUsage struct {
	Name     string
	Capacity model.Size
	Reserved model.Size
}

// phases are always exported, at zero when no VM is in them, so a dashboard
// shows "0 failed" rather than no data.
var phases = []model.Phase{
	model.PhaseDeclared, model.PhasePending, model.PhaseRunning,
	model.PhaseMigrating, model.PhaseStopped, model.PhaseFailed,
}

// fleetCollector exports the fleet's gauges from the last snapshot handed to
// SetFleet. A snapshot replaces the previous one whole, so a scrape never
// sees half an update and a node or phase that is gone disappears.
type fleetCollector struct {
	vmsDesc      *prometheus.Desc
	reservedDesc *prometheus.Desc

	mu    sync.Mutex
	vms   map[model.Phase]int
	nodes map[string]NodeUsage // by name: a name given twice must not fail the whole scrape
}

func newFleetCollector() *fleetCollector {
	c := &fleetCollector{
		vmsDesc: prometheus.NewDesc("vertigo_vms",
			"VMs by phase.", []string{"phase"}, nil),
		reservedDesc: prometheus.NewDesc("vertigo_node_reserved_ratio",
			"Fraction of a node's capacity reserved by placement.", []string{"node", "resource"}, nil),
	}
	c.set(nil, nil)
	return c
}

// SetFleet replaces the fleet gauges with the given VMs and nodes. A node
// with no capacity in a resource exports no ratio for it, rather than +Inf.
func (m *Metrics) SetFleet(vms []model.VM, nodes []NodeUsage) { m.fleet.set(vms, nodes) }

func (c *fleetCollector) set(vms []model.VM, nodes []NodeUsage) {
	count := make(map[model.Phase]int, len(phases))
	for _, p := range phases {
		count[p] = 0
	}
	for _, vm := range vms {
		count[vm.Phase]++
	}
	byName := make(map[string]NodeUsage, len(nodes))
	for _, n := range nodes {
		byName[n.Name] = n
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.vms, c.nodes = count, byName
}

func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.vmsDesc
	ch <- c.reservedDesc
}

func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for phase, n := range c.vms {
		ch <- prometheus.MustNewConstMetric(c.vmsDesc, prometheus.GaugeValue, float64(n), string(phase))
	}
	for _, n := range c.nodes {
		if n.Capacity.VCPUMilli > 0 {
			c.ratio(ch, n.Name, "vcpu", float64(n.Reserved.VCPUMilli)/float64(n.Capacity.VCPUMilli))
		}
		if n.Capacity.MemoryBytes > 0 {
			c.ratio(ch, n.Name, "memory", float64(n.Reserved.MemoryBytes)/float64(n.Capacity.MemoryBytes))
		}
	}
}

func (c *fleetCollector) ratio(ch chan<- prometheus.Metric, node, resource string, v float64) {
	ch <- prometheus.MustNewConstMetric(c.reservedDesc, prometheus.GaugeValue, v, node, resource)
}
