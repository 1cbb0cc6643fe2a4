package simulate

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Result is what one policy's replay measured. A sample is one VM over one
// step the trace covers; it is under-provisioned when its CPU demand
// exceeds the vCPUs in force during the step.
type Result struct {
	Policy      string
	Samples     int
	VMHours     float64
	AllocVCPUH  float64 // vCPU-hours allocated
	AllocGiBH   float64 // GiB-hours allocated
	DemandVCPUH float64 // vCPU-hours demanded
	Under       int     // samples with CPU demand > vCPUs
	ShortMean   float64 // mean of demand - vCPUs over those samples, cores
	ShortP99    float64 // its 99th percentile (nearest rank), cores
	MemUnder    int     // samples with used memory > memory
	Resizes     int     // changes of a VM's size, in vCPUs or memory
	Migrations  int64
	Denied      int64 // growths placement refused outright
	Partial     int64 // growths placement granted in part

	// Per step, for the plots: the fleet's allocation, and each VM's vCPUs.
	FleetVCPU []float64
	FleetGiB  []float64
	VMVCPU    [][]float64
}

const gib = float64(1 << 30)

func summarize(g *Grid, name string, f *fleet) Result {
	r := Result{Policy: name, Migrations: f.migrations.Load(), Denied: f.denied.Load(), Partial: f.partial.Load(),
		FleetVCPU: make([]float64, g.Steps), FleetGiB: make([]float64, g.Steps), VMVCPU: make([][]float64, len(g.VMs))}
	h := g.Step.Hours()
	var short []float64
	for i, s := range g.VMs {
		r.VMVCPU[i] = make([]float64, g.Steps)
		for k, size := range f.inForce[i] {
			if k > 0 && size != f.inForce[i][k-1] {
				r.Resizes++
			}
			if !s.Present[k] {
				continue
			}
			vcpu, mem := float64(size.VCPUMilli)/1000, float64(size.MemoryBytes)
			r.VMVCPU[i][k] = vcpu
			r.FleetVCPU[k] += vcpu
			r.FleetGiB[k] += mem / gib
			r.Samples++
			r.AllocVCPUH += vcpu * h
			r.AllocGiBH += mem / gib * h
			r.DemandVCPUH += s.CPU[k] * h
			if d := s.CPU[k] - vcpu; d > 1e-9 {
				r.Under++
				short = append(short, d)
			}
			if s.Mem != nil && s.Mem[k] > size.MemoryBytes {
				r.MemUnder++
			}
		}
	}
	r.VMHours = float64(r.Samples) * h
	if len(short) > 0 {
		var sum float64
		for _, d := range short {
			sum += d
		}
		r.ShortMean = sum / float64(len(short))
		slices.Sort(short)
		r.ShortP99 = short[int(math.Ceil(0.99*float64(len(short))))-1]
	}
	return r
}

// UnderFrac is the fraction of samples under-provisioned in CPU.
func (r Result) UnderFrac() float64 { return frac(r.Under, r.Samples) }

// MemUnderFrac is the fraction of samples short of memory.
func (r Result) MemUnderFrac() float64 { return frac(r.MemUnder, r.Samples) }

// ResizesPerVMHour is how often a VM is resized.
func (r Result) ResizesPerVMHour() float64 {
	if r.VMHours == 0 {
		return 0
	}
	return float64(r.Resizes) / r.VMHours
}

func frac(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

// field is one column of the results, named for the CSV and the key=value
// line, with its printed value.
type field struct{ key, value string }

func (r Result) fields() []field {
	f := func(v float64, decimals int) string { return strconv.FormatFloat(v, 'f', decimals, 64) }
	return []field{
		{"policy", r.Policy},
		{"alloc_vcpu_h", f(r.AllocVCPUH, 1)},
		{"demand_vcpu_h", f(r.DemandVCPUH, 1)},
		{"alloc_over_demand", f(r.AllocVCPUH/r.DemandVCPUH, 3)},
		{"alloc_gib_h", f(r.AllocGiBH, 1)},
		{"under_frac", f(r.UnderFrac(), 4)},
		{"short_mean_vcpu", f(r.ShortMean, 3)},
		{"short_p99_vcpu", f(r.ShortP99, 3)},
		{"mem_under_frac", f(r.MemUnderFrac(), 4)},
		{"resizes_per_vm_h", f(r.ResizesPerVMHour(), 4)},
		{"migrations", strconv.FormatInt(r.Migrations, 10)},
		{"denied_grants", strconv.FormatInt(r.Denied, 10)},
		{"partial_grants", strconv.FormatInt(r.Partial, 10)},
	}
}

// rows are the results as a header and one row a policy.
func rows(results []Result) [][]string {
	var out [][]string
	for i, r := range results {
		var head, row []string
		for _, f := range r.fields() {
			head, row = append(head, f.key), append(row, f.value)
		}
		if i == 0 {
			out = append(out, head)
		}
		out = append(out, row)
	}
	return out
}

// writeTable prints the results aligned, one policy a row.
func writeTable(w io.Writer, results []Result) {
	table := rows(results)
	widths := make([]int, len(table[0]))
	for _, row := range table {
		for j, c := range row {
			widths[j] = max(widths[j], len(c))
		}
	}
	for _, row := range table {
		var b strings.Builder
		for j, c := range row {
			if j == 0 {
				fmt.Fprintf(&b, "%-*s", widths[j], c)
			} else {
				fmt.Fprintf(&b, "  %*s", widths[j], c)
			}
		}
		fmt.Fprintln(w, b.String())
	}
}

// writeCSV writes the same table as CSV.
func writeCSV(w io.Writer, results []Result) error {
	cw := csv.NewWriter(w)
	if err := cw.WriteAll(rows(results)); err != nil {
		return err
	}
	return cw.Error()
}

// writeKV prints the machine-readable lines, one a policy.
func writeKV(w io.Writer, results []Result) {
	for _, r := range results {
		var parts []string
		for _, f := range r.fields() {
			parts = append(parts, f.key+"="+f.value)
		}
		fmt.Fprintln(w, strings.Join(parts, " "))
	}
}
