package config

import (
	"cmp"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Format renders diagnostics one per line, location first:
// "file:line,col-col: Summary; Detail".
func Format(diags hcl.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		loc := "<unknown location>"
		if d.Subject != nil {
			loc = d.Subject.String()
		}
		b.WriteString(loc + ": ")
		if d.Severity == hcl.DiagWarning {
			b.WriteString("warning: ")
		}
		b.WriteString(d.Summary)
		if d.Detail != "" {
			b.WriteString("; " + strings.Join(strings.Fields(d.Detail), " "))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// sortDiagnostics orders diagnostics as they appear in the file, so a
// report reads top to bottom and is the same on every run (hcl reports
// unknown attributes in map order).
func sortDiagnostics(diags hcl.Diagnostics) hcl.Diagnostics {
	slices.SortStableFunc(diags, func(a, b *hcl.Diagnostic) int {
		switch {
		case a.Subject == nil || b.Subject == nil:
			return cmp.Compare(rank(a), rank(b))
		case a.Subject.Filename != b.Subject.Filename:
			return strings.Compare(a.Subject.Filename, b.Subject.Filename)
		}
		return cmp.Compare(a.Subject.Start.Byte, b.Subject.Start.Byte)
	})
	return diags
}

// rank puts diagnostics without a location first.
func rank(d *hcl.Diagnostic) int {
	if d.Subject == nil {
		return 0
	}
	return 1
}
