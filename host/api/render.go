package api

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vertigo-autoscaler/vertigo/host/model"
)

// RenderStatus writes the tables `vertigo status` prints: nodes, VMs,
// plugins and migrations. now dates the age of each VM's last decision.
// Rows are sorted by name, so the output depends on s and now alone.
func RenderStatus(w io.Writer, s Status, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Fleet at %s\n", s.Time.UTC().Format(time.RFC3339))

	nodes := table{title: "NODES", header: []string{"NAME", "VCPU", "MEMORY", "OF WATERMARK", "VMS"}}
	for _, n := range sortedBy(s.Nodes, func(n NodeStatus) string { return n.Name }) {
		nodes.add(n.Name,
			vcpus(n.Reserved.VCPUMilli)+"/"+vcpus(n.Capacity.VCPUMilli),
			model.FormatBytes(n.Reserved.MemoryBytes)+"/"+model.FormatBytes(n.Capacity.MemoryBytes),
			ofWatermark(n),
			strconv.Itoa(len(n.VMs)))
	}

	vms := table{title: "VMS", header: []string{"NAME", "NODE", "ADDRESS", "PHASE", "SIZE", "RESERVED", "LOAD1", "MEM USED", "UPTIME", "DECIDED", "OUTCOME", "REASON"}}
	for _, vm := range sortedBy(s.VMs, func(vm model.VM) string { return vm.Name }) {
		decided, outcome, reason := "-", "-", "-"
		if d := vm.LastDecision; d != nil {
			decided, outcome, reason = age(now.Sub(d.At))+" ago", d.Outcome, d.Reason
		}
		load, used, uptime := "-", "-", "-"
		if u, ok := s.Usage[vm.Name]; ok {
			load = strconv.FormatFloat(u.Load1, 'f', 2, 64)
			used = model.FormatBytes(u.MemoryUsed) + "/" + model.FormatBytes(u.OnlineMemory)
			uptime = age(time.Duration(u.UptimeNanos))
		}
		addr := vm.Address
		if addr == "" {
			addr = "-"
		}
		vms.add(vm.Name, vm.Node, addr, string(vm.Phase), vm.Size.String(), vm.Reserved.String(), load, used, uptime, decided, outcome, reason)
	}

	plugins := table{title: "PLUGINS", header: []string{"NAME", "KIND", "VERSION", "PID", "RESTARTS", "HEALTHY"}}
	for _, p := range sortedBy(s.Plugins, func(p PluginStatus) string { return p.Name }) {
		pid, healthy := "-", "no"
		if p.PID != 0 {
			pid = strconv.Itoa(p.PID)
		}
		if p.Healthy {
			healthy = "yes"
		}
		plugins.add(p.Name, p.Kind, p.Version, pid, strconv.Itoa(p.Restarts), healthy)
	}

	migrations := table{title: "MIGRATIONS", header: []string{"VM", "FROM", "TO", "STATE", "PROGRESS", "REASON"}}
	for _, m := range sortedBy(s.Migrations, func(m Migration) string { return m.VM }) {
		reason := m.Reason
		if m.Error != "" {
			reason += ": " + m.Error
		}
		migrations.add(m.VM, m.From, m.To, m.State, ProgressText(m), reason)
	}

	for _, t := range []table{nodes, vms, plugins, migrations} {
		fmt.Fprintln(tw)
		t.write(tw)
	}
	_ = tw.Flush()
}

// table is one titled section; tabwriter aligns its columns on their own,
// because the title line has no cells.
type table struct {
	title  string
	header []string
	rows   [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t table) write(w io.Writer) {
	fmt.Fprintln(w, t.title)
	if len(t.rows) == 0 {
		fmt.Fprintln(w, "(none)")
		return
	}
	for _, row := range append([][]string{t.header}, t.rows...) {
		cells := make([]string, len(row))
		for i, c := range row {
			cells[i] = cell(c)
		}
		fmt.Fprintln(w, strings.Join(cells, "\t"))
	}
}

// cell keeps a value on one line of one column, whatever a plugin put in
// its reason.
func cell(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, strings.TrimSpace(s))
	if s == "" {
		return "-"
	}
	return s
}

func sortedBy[T any](items []T, key func(T) string) []T {
	return slices.SortedStableFunc(slices.Values(items), func(a, b T) int { return cmp.Compare(key(a), key(b)) })
}

func vcpus(milli int64) string { return strconv.FormatFloat(float64(milli)/1000, 'f', -1, 64) }

// ofWatermark is how full a node is against its watermark, in the resource
// closest to it: placement moves VMs away when either one crosses it.
func ofWatermark(n NodeStatus) string {
	if n.Watermark <= 0 {
		return "-"
	}
	ratio, known := 0.0, false
	if n.Capacity.VCPUMilli > 0 {
		ratio, known = float64(n.Reserved.VCPUMilli)/float64(n.Capacity.VCPUMilli), true
	}
	if n.Capacity.MemoryBytes > 0 {
		ratio, known = max(ratio, float64(n.Reserved.MemoryBytes)/float64(n.Capacity.MemoryBytes)), true
	}
	if !known {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*ratio/n.Watermark)
}

// age prints a duration the way an operator reads it at a glance.
func age(d time.Duration) string {
	s := int64(max(d, 0) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
}

// ProgressText is a migration's progress in a few words: bytes moved of
// the total, rate, and the downtime once known.
func ProgressText(m Migration) string {
	if m.TransferredBytes == 0 && m.RemainingBytes == 0 {
		return "-"
	}
	total := m.TransferredBytes + m.RemainingBytes
	s := fmt.Sprintf("%s/%s at %s/s", model.FormatBytes(m.TransferredBytes), model.FormatBytes(total), model.FormatBytes(m.BytesPerSecond))
	if m.DowntimeNanos > 0 {
		s += fmt.Sprintf(", downtime %s", time.Duration(m.DowntimeNanos).Round(time.Millisecond))
	}
	return s
}
