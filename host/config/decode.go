package config

import (
	"fmt"
	"path/filepath"
	"regexp"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/vertigo-autoscaler/vertigo/host/api"
)

const defaultAPIAddress = "127.0.0.1:7311"

func defaultLoop() Loop {
	return Loop{
		Interval:           5 * time.Second,
		MetricsWindow:      time.Minute,
		HealthInterval:     2 * time.Second,
		CallTimeout:        2 * time.Second,
		ConsentTimeout:     5 * time.Second,
		RestartBackoffMin:  200 * time.Millisecond,
		RestartBackoffMax:  30 * time.Second,
		MigrationBandwidth: 1 << 30,
		MigrationDowntime:  300 * time.Millisecond,
	}
}

var fileSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "state_dir"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "api"},
		{Type: "loop"},
		{Type: "plugin", LabelNames: []string{"name"}},
		{Type: "node", LabelNames: []string{"name"}},
		{Type: "vm", LabelNames: []string{"name"}},
	},
}

var apiSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "address"}, {Name: "token_file"}},
}

var loopDurations = []struct {
	name  string
	field func(*Loop) *time.Duration
}{
	{"interval", func(l *Loop) *time.Duration { return &l.Interval }},
	{"metrics_window", func(l *Loop) *time.Duration { return &l.MetricsWindow }},
	{"health_interval", func(l *Loop) *time.Duration { return &l.HealthInterval }},
	{"call_timeout", func(l *Loop) *time.Duration { return &l.CallTimeout }},
	{"consent_timeout", func(l *Loop) *time.Duration { return &l.ConsentTimeout }},
	{"restart_backoff_min", func(l *Loop) *time.Duration { return &l.RestartBackoffMin }},
	{"restart_backoff_max", func(l *Loop) *time.Duration { return &l.RestartBackoffMax }},
	{"migration_downtime", func(l *Loop) *time.Duration { return &l.MigrationDowntime }},
}

var loopSchema = func() *hcl.BodySchema {
	s := &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "migration_bandwidth"}}}
	for _, d := range loopDurations {
		s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: d.name})
	}
	return s
}()

// Names become file names under the state directory and process names, so
// they are kept to a safe alphabet.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// decoder turns the file's syntax tree into a Config, collecting every
// diagnostic rather than stopping at the first.
type decoder struct {
	filename string
	// dir is what relative paths are resolved against.
	dir string
	// checkFiles makes plugin paths that do not exist errors (Load only).
	checkFiles bool
	diags      hcl.Diagnostics
}

func parse(src []byte, filename, dir string, checkFiles bool) (*Config, hcl.Diagnostics) {
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		// Past a syntax error the parser's recovery guesses; errors about
		// the guessed tree would mislead.
		return nil, sortDiagnostics(diags)
	}
	d := &decoder{filename: filename, dir: dir, checkFiles: checkFiles, diags: diags}
	cfg := d.file(file.Body)
	sortDiagnostics(d.diags)
	if d.diags.HasErrors() {
		return nil, d.diags
	}
	return cfg, d.diags
}

// content applies a block schema, returning readers for its attributes.
func (d *decoder) content(body hcl.Body, s *hcl.BodySchema) (attrs, hcl.Blocks) {
	c, diags := body.Content(s)
	d.diags = append(d.diags, diags...)
	return attrs{m: c.Attributes, diags: &d.diags}, c.Blocks
}

func (d *decoder) errorAt(rng hcl.Range, summary, format string, args ...any) {
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  rng.Ptr(),
	})
}

func (d *decoder) file(body hcl.Body) *Config {
	a, blocks := d.content(body, fileSchema)
	cfg := &Config{
		File:     d.filename,
		StateDir: filepath.Join(d.dir, "state"),
		API:      API{Address: defaultAPIAddress},
		Loop:     defaultLoop(),
	}
	d.path(a, "state_dir", &cfg.StateDir)
	cfg.API.TokenFile = filepath.Join(cfg.StateDir, "api-token")
	if b := d.single(blocks, "api"); b != nil {
		d.api(b.Body, &cfg.API)
	}
	if b := d.single(blocks, "loop"); b != nil {
		d.loop(b.Body, &cfg.Loop)
	}
	for _, t := range []string{"plugin", "node", "vm"} {
		d.unique(blocks.OfType(t))
	}
	cfg.Plugins = d.plugins(blocks.OfType("plugin"))
	cfg.Nodes = d.nodes(blocks.OfType("node"))
	for _, b := range blocks.OfType("vm") {
		cfg.VMs = append(cfg.VMs, d.vm(b, cfg.Nodes))
	}
	return cfg
}

// single returns the one block of type t, nil when there is none; repeats
// are errors.
func (d *decoder) single(blocks hcl.Blocks, t string) *hcl.Block {
	of := blocks.OfType(t)
	if len(of) == 0 {
		return nil
	}
	for _, b := range of[1:] {
		d.errorAt(b.DefRange, "Duplicate "+t+" block", "Only one %s block is allowed; the first is at %s.", t, of[0].DefRange)
	}
	return of[0]
}

// unique reports blocks whose name label is invalid or already taken by a
// block of the same type.
func (d *decoder) unique(blocks hcl.Blocks) {
	first := map[string]hcl.Range{}
	for _, b := range blocks {
		name, rng := b.Labels[0], b.LabelRanges[0]
		if !validName.MatchString(name) {
			d.errorAt(rng, "Invalid "+b.Type+" name", "%q: a name is 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit.", name)
			continue
		}
		if at, taken := first[name]; taken {
			d.errorAt(rng, "Duplicate "+b.Type+" name", "A %s named %q is already defined at %s.", b.Type, name, at)
			continue
		}
		first[name] = b.DefRange
	}
}

// path reads a non-empty path, resolving it against the file's directory.
func (d *decoder) path(a attrs, name string, dst *string) bool {
	var p string
	if !a.str(name, &p) {
		return false
	}
	if p == "" {
		a.invalid(name, "must not be empty")
		return false
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(d.dir, p)
	}
	*dst = p
	return true
}

func (d *decoder) api(body hcl.Body, dst *API) {
	a, _ := d.content(body, apiSchema)
	if a.str("address", &dst.Address) {
		if err := api.CheckLoopback(dst.Address); err != nil {
			a.invalid("address", "%v", err)
		}
	}
	d.path(a, "token_file", &dst.TokenFile)
}

func (d *decoder) loop(body hcl.Body, l *Loop) {
	before := len(d.diags)
	a, _ := d.content(body, loopSchema)
	for _, f := range loopDurations {
		a.duration(f.name, f.field(l))
	}
	a.bytes("migration_bandwidth", &l.MigrationBandwidth)
	// A value that did not read would be compared as its default.
	if !d.diags[before:].HasErrors() && l.RestartBackoffMin > l.RestartBackoffMax {
		// Only a value written in the file can be wrong.
		at := "restart_backoff_min"
		if !a.has(at) {
			at = "restart_backoff_max"
		}
		a.invalid(at, "restart_backoff_min (%s) must not exceed restart_backoff_max (%s)", l.RestartBackoffMin, l.RestartBackoffMax)
	}
}
