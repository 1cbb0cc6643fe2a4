package simulate

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// line is one series of a plot, a value per step.
type line struct {
	name, color string
	y           []float64
}

// colors are the policies', in the order of Policies; demand is black.
var colors = []string{"#1f77b4", "#ff7f0e", "#7f7f7f", "#2ca02c", "#9467bd", "#8c564b"}

// maxPoints bounds the points drawn per line: a month of 5-minute steps is
// wider than any screen.
const maxPoints = 1500

const (
	plotW, plotH                       = 1000, 420
	marginL, marginR, marginT, marginB = 70, 20, 40, 70
)

// writePlot draws lines over steps as an SVG line chart. When there are more
// steps than maxPoints, each point is the maximum of the steps it stands
// for, so that peaks, of demand and of allocation, stay visible.
func writePlot(w io.Writer, title, unit string, stepHours float64, lines []line) error {
	n := len(lines[0].y)
	per := max(1, int(math.Ceil(float64(n)/maxPoints)))
	top := 0.0
	for _, l := range lines {
		for _, v := range l.y {
			top = max(top, v)
		}
	}
	top = niceCeil(top * 1.05)
	spanH := float64(n) * stepHours
	xUnit, xScale := "hours", 1.0
	if spanH > 48 {
		xUnit, xScale = "days", 24
	}
	iw, ih := float64(plotW-marginL-marginR), float64(plotH-marginT-marginB)
	x := func(step float64) float64 { return marginL + iw*step/float64(max(1, n-1)) }
	y := func(v float64) float64 { return marginT + ih*(1-v/top) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", plotW, plotH)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15">%s</text>`+"\n", marginL, escape(title))
	for i := 0; i <= 5; i++ {
		v := top * float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n",
			marginL, plotW-marginR, y(v), y(v), marginL-6, y(v)+4, strconv.FormatFloat(v, 'g', 4, 64))
	}
	for i := 0; i <= 6; i++ {
		step := float64(n-1) * float64(i) / 6
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n",
			x(step), plotH-marginB+18, strconv.FormatFloat(step*stepHours/xScale, 'f', 1, 64))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", marginL+int(iw)/2, plotH-marginB+36, xUnit)
	fmt.Fprintf(&b, `<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">%s</text>`+"\n", marginT+int(ih)/2, marginT+int(ih)/2, escape(unit))
	for li, l := range lines {
		var pts []string
		for start := 0; start < n; start += per {
			v := 0.0
			for _, s := range l.y[start:min(n, start+per)] {
				v = max(v, s)
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(float64(start)), y(v)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.2" points="%s"/>`+"\n", l.color, strings.Join(pts, " "))
		lx := marginL + li*150
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="3"/><text x="%d" y="%d">%s</text>`+"\n",
			lx, lx+20, plotH-14, plotH-14, l.color, lx+25, plotH-10, escape(l.name))
	}
	if per > 1 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" fill="#666">each point: the maximum of %d steps</text>`+"\n", plotW-marginR, 22, per)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
