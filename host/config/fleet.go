package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/vertigo-autoscaler/vertigo/host/model"
)

const defaultWatermark = 0.9

// imageName keeps image names usable as directory names.
var imageName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

var nodeSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "vcpus", Required: true},
		{Name: "memory", Required: true},
		{Name: "watermark"},
	},
}

var vmSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "node"},
		{Name: "min_vcpus", Required: true},
		{Name: "max_vcpus", Required: true},
		{Name: "unit_vcpus", Required: true},
		{Name: "min_memory", Required: true},
		{Name: "max_memory", Required: true},
		{Name: "unit_memory", Required: true},
		{Name: "vcpus"},
		{Name: "memory"},
		{Name: "image"},
	},
}

func (d *decoder) nodes(blocks hcl.Blocks) []model.Node {
	if len(blocks) == 0 {
		d.errorAt(fileStart(d.filename), "No nodes", "At least one node block is required: nodes are the capacity VMs are placed on.")
	}
	var nodes []model.Node
	for _, b := range blocks {
		n := model.Node{Name: b.Labels[0], Watermark: defaultWatermark}
		a, _ := d.content(b.Body, nodeSchema)
		a.vcpus("vcpus", &n.Capacity.VCPUMilli)
		a.bytes("memory", &n.Capacity.MemoryBytes)
		if a.number("watermark", &n.Watermark) && (n.Watermark <= 0 || n.Watermark > 1) {
			a.invalid("watermark", "must be in (0, 1], the fraction of the node placement fills before it moves VMs away; got %g", n.Watermark)
		}
		nodes = append(nodes, n)
	}
	return nodes
}

// measured reports whether a node's capacity was read: readers only store
// positive values, so a zero means the file's value was wrong or missing
// (already reported) and nothing can be concluded about what fits.
func measured(n model.Node) bool {
	return n.Capacity.VCPUMilli > 0 && n.Capacity.MemoryBytes > 0
}

func (d *decoder) vm(b *hcl.Block, nodes []model.Node) VMSpec {
	before := len(d.diags)
	v := VMSpec{Name: b.Labels[0], Range: b.DefRange}
	a, _ := d.content(b.Body, vmSchema)
	cpu := readExtent(a, "vcpus", attrs.vcpus, formatVCPUs)
	mem := readExtent(a, "memory", attrs.bytes, model.FormatBytes)
	v.Bounds = model.Bounds{
		Min:  model.Size{VCPUMilli: cpu.min, MemoryBytes: mem.min},
		Max:  model.Size{VCPUMilli: cpu.max, MemoryBytes: mem.max},
		Unit: model.Size{VCPUMilli: cpu.unit, MemoryBytes: mem.unit},
	}
	v.Initial = model.Size{VCPUMilli: cpu.initial, MemoryBytes: mem.initial}

	if a.str("image", &v.Image) && !imageName.MatchString(v.Image) {
		a.invalid("image", "must name a guest image of the hypervisor: lower-case letters, digits and '-'; got %q", v.Image)
	}
	sized := !d.diags[before:].HasErrors()
	switch {
	case a.str("node", &v.Node):
		onNode(a, v, nodes, sized)
	case sized && !a.has("node"):
		d.fitsSomeNode(v, nodes)
	}
	return v
}

// onNode checks that a pinned VM's node exists and can hold the VM's
// minimum size.
func onNode(a attrs, v VMSpec, nodes []model.Node, sized bool) {
	for _, n := range nodes {
		if n.Name != v.Node {
			continue
		}
		if sized && measured(n) && !v.Bounds.Min.Fits(n.Capacity) {
			a.errorf("node", "VM does not fit its node", "The minimum size of vm %q, %s, exceeds node %q's capacity, %s.", v.Name, v.Bounds.Min, n.Name, n.Capacity)
		}
		return
	}
	detail := fmt.Sprintf("No node named %q is defined.", v.Node)
	if len(nodes) > 0 {
		detail += " The nodes are " + nodeNames(nodes) + "."
	}
	a.errorf("node", "Unknown node", "%s", detail)
}

// fitsSomeNode reports a VM that could never be placed: its minimum size
// fits on no node.
func (d *decoder) fitsSomeNode(v VMSpec, nodes []model.Node) {
	for _, n := range nodes {
		if !measured(n) || v.Bounds.Min.Fits(n.Capacity) {
			return
		}
	}
	if len(nodes) > 0 {
		d.errorAt(v.Range, "VM fits no node", "The minimum size of vm %q, %s, fits on no node (%s).", v.Name, v.Bounds.Min, nodeCapacities(nodes))
	}
}

// extent is one resource of a VM's bounds and its initial size.
type extent[T int64 | uint64] struct{ min, max, unit, initial T }

// readExtent reads min_<name>, max_<name>, unit_<name> and the initial size
// <name>, which defaults to the minimum.
func readExtent[T int64 | uint64](a attrs, name string, read func(attrs, string, *T) bool, format func(T) string) extent[T] {
	var e extent[T]
	minOK := read(a, "min_"+name, &e.min)
	maxOK := read(a, "max_"+name, &e.max)
	read(a, "unit_"+name, &e.unit)
	e.initial = e.min
	if minOK && maxOK && e.min > e.max {
		a.invalid("min_"+name, "min_%s (%s) is larger than max_%s (%s)", name, format(e.min), name, format(e.max))
		return e
	}
	if read(a, name, &e.initial) && minOK && maxOK && (e.initial < e.min || e.initial > e.max) {
		a.invalid(name, "the initial %s, %s, is outside the bounds %s..%s", name, format(e.initial), format(e.min), format(e.max))
	}
	return e
}

func formatVCPUs(milli int64) string {
	return strconv.FormatFloat(float64(milli)/1000, 'f', -1, 64) + " vCPU"
}

func nodeNames(nodes []model.Node) string {
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = strconv.Quote(n.Name)
	}
	return strings.Join(names, ", ")
}

func nodeCapacities(nodes []model.Node) string {
	caps := make([]string, len(nodes))
	for i, n := range nodes {
		caps[i] = fmt.Sprintf("%s: %s", n.Name, n.Capacity)
	}
	return strings.Join(caps, ", ")
}
