package api_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"html"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/history"
	"github.com/vertigo-autoscaler/vertigo/host/model"
)

// chromiumPath is Debian's chromium; `make test` installs it.
const chromiumPath = "/usr/bin/chromium"

// TestPageInHeadlessChromium loads the page in a real browser against the
// real server: the plots must be drawn from the recorded history, a point
// recorded while the page is open must appear through its polling, and the
// page must change nothing.
func TestPageInHeadlessChromium(t *testing.T) {
	requireChromium(t)
	b := newHistoryBackend()
	// Recorded after the page's first load, so only a working poll with
	// since can bring it in.
	late := fleetAt(fleetPoints)
	b.onPoll = func() {
		size := model.Size{VCPUMilli: 3000, MemoryBytes: 6 * gib}
		b.hist.AddPoint("pg-1", history.Point{At: late, Node: "node-a", Phase: model.PhaseRunning, Size: size, Reserved: size,
			Usage: &history.Usage{OnlineVCPUMilli: 3000, OnlineMemory: 6 * gib, Load1: 2.5, MemoryUsed: 2 * gib}})
		b.hist.AddDecision("pg-1", model.Decision{At: late, Goal: size, Reason: "pressure: cpu some 31% over 20%", Outcome: "grown"})
	}
	s := startServer(t, b)
	url := "http://" + s.Addr() + "/"

	dom := runChromium(t, "--dump-dom", url)
	charts := parseCharts(t, dom)
	require.ElementsMatch(t, []string{"pg-1/cpu", "pg-1/memory", "pg-2/cpu", "pg-2/memory"}, keys(charts))

	// pg-1's load: one point per recorded point plus the late one, in time
	// order, and higher load drawn higher.
	load := charts["pg-1/cpu"].series("load")
	require.Len(t, load, 1, "one unbroken line")
	loads := make([]float64, 0, fleetPoints+1)
	for i := range fleetPoints {
		loads = append(loads, pg1Load(i))
	}
	loads = append(loads, 2.5)
	requireDrawn(t, loads, load[0])

	// pg-2's guest reported from its third point on: its usage line starts
	// there, while its size is drawn from the first point.
	require.Len(t, charts["pg-2/memory"].series("used")[0], fleetPoints-2)
	require.Equal(t, strconv.Itoa(fleetPoints), charts["pg-2/memory"].stepPoints(t, "size"))

	// Decisions that changed something are markers with their reasons;
	// "unchanged" ones are not drawn.
	require.Equal(t, []marker{
		{"grown", "cpu: load1 1.07 over target 0.9"},
		{"shrunk", "cpu: load1 0.4 under target for 60s"},
		{"grown", "pressure: cpu some 31% over 20%"},
	}, charts["pg-1/cpu"].decisions())
	require.Equal(t, []marker{{"refused_by_guest", "guest refused: working set needs 3GiB"}}, charts["pg-2/memory"].decisions())
	migration := charts["pg-2/cpu"].migrations()
	require.Len(t, migration, 1)
	require.Contains(t, migration[0], "migration node-a → node-b completed in 8 s, downtime 40 ms")

	// The fleet summary and the VM headers.
	require.Contains(t, dom, `data-state="live"`)
	require.Regexp(t, `<div class="label">VMs</div><div class="value">2<small> / 2</small>`, dom)
	require.Contains(t, dom, `<span class="on"><i class="swatch n1"></i>node-b</span>`)

	// The page polled with the exact latest time it was given, nanoseconds
	// and all, and called nothing that changes state.
	asked := b.sinces()
	require.GreaterOrEqual(t, len(asked), 3)
	require.True(t, asked[0].IsZero())
	require.True(t, asked[1].Equal(fleetAt(fleetPoints-1)), "second poll since %v", asked[1])
	require.True(t, asked[len(asked)-1].Equal(late))
	require.Zero(t, b.tickCount())
	require.Empty(t, b.restarts())

	screenshot(t, url)
}

// requireChromium fails in CI, where `make test` installs chromium, and
// skips elsewhere.
func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		msg := "no " + chromiumPath + ": apt-get install -y --no-install-recommends chromium"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// runChromium loads a page in a fresh headless chromium and returns what it
// printed. Virtual time runs the page's 2 s polls in well under a second,
// and stands still while a request is in flight.
func runChromium(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=7000",
	}
	cmd := exec.CommandContext(ctx, chromiumPath, append(base, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "TZ=UTC")
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "chromium: %s", stderr.String())
	return stdout.String()
}

// screenshot keeps a picture of the page for people to look at: in
// $VERTIGO_ARTIFACTS if set, else build/artifacts at the repository root.
func screenshot(t *testing.T, url string) {
	t.Helper()
	dir := os.Getenv("VERTIGO_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), "build", "artifacts")
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	file := filepath.Join(dir, "web.png")
	runChromium(t, "--screenshot="+file, "--window-size=1280,900", "--hide-scrollbars", url)
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	require.Equal(t, 1280, img.Bounds().Dx())
	require.Equal(t, 900, img.Bounds().Dy())
	colors := map[[4]uint32]bool{}
	for y := 0; y < 900; y += 3 {
		for x := 0; x < 1280; x += 3 {
			r, g, b, a := img.At(x, y).RGBA()
			colors[[4]uint32{r, g, b, a}] = true
		}
	}
	require.Greater(t, len(colors), 50, "the screenshot is not a blank page")
	t.Logf("screenshot: %s", file)
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for ; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		require.NotEqual(t, dir, filepath.Dir(dir), "no go.mod above the test")
	}
}

// svgNode is an element of a chart, as chromium serialised it.
type svgNode struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []svgNode  `xml:",any"`
}

func (n svgNode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (n svgNode) hasClass(c string) bool { return strings.Contains(" "+n.attr("class")+" ", " "+c+" ") }

func (n svgNode) all(match func(svgNode) bool) []svgNode {
	var out []svgNode
	if match(n) {
		out = append(out, n)
	}
	for _, c := range n.Children {
		out = append(out, c.all(match)...)
	}
	return out
}

// series is the points of each polyline drawing a series.
func (n svgNode) series(name string) [][][2]float64 {
	var out [][][2]float64
	for _, line := range n.all(func(c svgNode) bool { return c.XMLName.Local == "polyline" && c.attr("data-series") == name }) {
		var pts [][2]float64
		for _, xy := range strings.Fields(line.attr("points")) {
			x, y, _ := strings.Cut(xy, ",")
			fx, _ := strconv.ParseFloat(x, 64)
			fy, _ := strconv.ParseFloat(y, 64)
			pts = append(pts, [2]float64{fx, fy})
		}
		out = append(out, pts)
	}
	return out
}

func (n svgNode) stepPoints(t *testing.T, name string) string {
	steps := n.all(func(c svgNode) bool { return c.XMLName.Local == "path" && c.attr("data-series") == name })
	require.Len(t, steps, 1)
	return steps[0].attr("data-points")
}

type marker struct{ outcome, reason string }

func (n svgNode) decisions() []marker {
	var out []marker
	for _, g := range n.all(func(c svgNode) bool { return c.hasClass("decision") }) {
		_, reason, _ := strings.Cut(g.attr("data-tip"), "\n")
		out = append(out, marker{g.attr("data-outcome"), reason})
	}
	return out
}

func (n svgNode) migrations() []string {
	var out []string
	for _, g := range n.all(func(c svgNode) bool { return c.hasClass("migration") }) {
		out = append(out, g.attr("data-tip"))
	}
	return out
}

var chartRE = regexp.MustCompile(`(?s)<svg class="chart".*?</svg>`)

// parseCharts finds the charts in a dumped DOM, by "vm/metric".
func parseCharts(t *testing.T, dom string) map[string]svgNode {
	t.Helper()
	charts := map[string]svgNode{}
	for _, raw := range chartRE.FindAllString(dom, -1) {
		var n svgNode
		// HTML serialisation escapes what XML needs escaped, and no more:
		// attribute values are unescaped by the decoder.
		require.NoError(t, xml.Unmarshal([]byte(raw), &n), raw)
		charts[html.UnescapeString(n.attr("data-vm"))+"/"+n.attr("data-metric")] = n
	}
	require.NotEmpty(t, charts, "no chart in the page:\n%s", dom)
	return charts
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// requireDrawn checks a line plots values: one point each, left to right,
// and a higher value always higher on screen (smaller y).
func requireDrawn(t *testing.T, values []float64, pts [][2]float64) {
	t.Helper()
	require.Len(t, pts, len(values))
	for i := 1; i < len(pts); i++ {
		require.Greater(t, pts[i][0], pts[i-1][0], "x of point %d", i)
	}
	for i := range values {
		for j := range values {
			if values[i] > values[j]+0.01 {
				require.Less(t, pts[i][1], pts[j][1], "point %d (%.2f) is drawn below point %d (%.2f)", i, values[i], j, values[j])
			}
		}
	}
}
