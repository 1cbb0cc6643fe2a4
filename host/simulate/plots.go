package simulate

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// plotIndexes resolves the VMs to plot: those named, or the three that
// demand the most CPU.
func plotIndexes(g *Grid, names []string) ([]int, error) {
	if len(names) > 0 {
		var out []int
		for _, n := range names {
			i := slices.IndexFunc(g.VMs, func(s Series) bool { return s.ID == strings.TrimSpace(n) })
			if i < 0 {
				return nil, &UsageError{fmt.Sprintf("--plot-vms: no VM %q in the trace", n)}
			}
			out = append(out, i)
		}
		return out, nil
	}
	total := make([]float64, len(g.VMs))
	order := make([]int, len(g.VMs))
	for i, s := range g.VMs {
		order[i] = i
		for _, c := range s.CPU {
			total[i] += c
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(total[b], total[a]) })
	return order[:min(3, len(order))], nil
}

// plot is one SVG file.
type plot struct {
	file, title, unit string
	lines             []line
}

// writePlots writes the fleet's vCPUs and memory against demand, and each
// plotted VM's vCPUs against its demand, and returns the files' names.
func writePlots(dir string, g *Grid, results []Result, vms []int) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	demand, memDemand := make([]float64, g.Steps), make([]float64, g.Steps)
	for _, s := range g.VMs {
		for k, c := range s.CPU {
			demand[k] += c
			if s.Mem != nil && s.Present[k] {
				memDemand[k] += float64(s.Mem[k]) / gib
			}
		}
	}
	with := func(first line, pick func(Result) []float64) []line {
		lines := []line{first}
		for i, r := range results {
			lines = append(lines, line{name: r.Policy, color: colors[i%len(colors)], y: pick(r)})
		}
		return lines
	}
	plots := []plot{
		{"fleet_vcpu.svg", "Fleet: vCPUs allocated vs cores demanded", "vCPUs",
			with(line{"demand", "black", demand}, func(r Result) []float64 { return r.FleetVCPU })},
	}
	if g.HasMemory() {
		plots = append(plots, plot{"fleet_memory.svg", "Fleet: memory allocated vs used (GiB)", "GiB",
			with(line{"used", "black", memDemand}, func(r Result) []float64 { return r.FleetGiB })})
	}
	for _, i := range vms {
		s := g.VMs[i]
		plots = append(plots, plot{"vm_" + s.ID + ".svg", "VM " + s.ID + ": vCPUs allocated vs cores demanded", "vCPUs",
			with(line{"demand", "black", s.CPU}, func(r Result) []float64 { return r.VMVCPU[i] })})
	}
	var files []string
	for _, p := range plots {
		err := writeFile(filepath.Join(dir, p.file), func(w io.Writer) error {
			return writePlot(w, p.title, p.unit, g.Step.Hours(), p.lines)
		})
		if err != nil {
			return nil, err
		}
		files = append(files, p.file)
	}
	return files, nil
}
