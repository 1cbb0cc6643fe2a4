package policy

import (
	"strconv"
	"strings"
)

// formatVCPU prints milli-vCPUs as vCPUs with at most two decimals ("3.56",
// "4").
func formatVCPU(milli float64) string {
	return decimal(milli/1000, 2)
}

// formatBytes prints bytes in binary units with about three significant
// digits ("1.2GiB", "100MiB", "1.73GiB").
func formatBytes(b float64) string {
	const units = "KMGTPE"
	if b < 1024 {
		return decimal(b, 0) + "B"
	}
	exp := 0
	for b /= 1024; b >= 1024 && exp < len(units)-1; b /= 1024 {
		exp++
	}
	places := 2
	switch {
	case b >= 100:
		places = 0
	case b >= 10:
		places = 1
	}
	return decimal(b, places) + units[exp:exp+1] + "iB"
}

// Reasons are built with these and +, not fmt: a trace replay formats
// millions of them, and fmt's reflection cost more than the decisions.

// fixed prints x with exactly places decimals, as %.Nf does.
func fixed(x float64, places int) string { return strconv.FormatFloat(x, 'f', places, 64) }

// general prints x as %g does (prec -1) or %.Ng.
func general(x float64, prec int) string { return strconv.FormatFloat(x, 'g', prec, 64) }

func itoa[T ~int | ~uint32](n T) string { return strconv.FormatInt(int64(n), 10) }

// decimal prints x with at most places decimals, without trailing zeros.
func decimal(x float64, places int) string {
	s := strconv.FormatFloat(x, 'f', places, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
	}
	return s
}
