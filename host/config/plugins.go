package config

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
	"github.com/vertigo-autoscaler/vertigo/sdk/schema"
)

var pluginSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "kind", Required: true},
		{Name: "path", Required: true},
		{Name: "args"},
		{Name: "sha256"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "config"}},
}

// requiredKinds are the plugins the control loop cannot decide without.
// Without a hypervisor VMs are only declared and accounted; without a
// network they keep the network they have. No kind may appear twice.
var requiredKinds = []pb.Kind{pb.Kind_KIND_SCALER, pb.Kind_KIND_PLACEMENT}

func (d *decoder) plugins(blocks hcl.Blocks) []*Plugin {
	first := map[pb.Kind]*Plugin{}
	var plugins []*Plugin
	for _, b := range blocks {
		p := &Plugin{Name: b.Labels[0], Range: b.DefRange}
		a, inner := d.content(b.Body, pluginSchema)
		var kind string
		if a.str("kind", &kind) {
			k, err := sdk.ParseKind(kind)
			other := first[k]
			switch {
			case err != nil:
				a.invalid("kind", "%v", err)
			case other != nil:
				a.errorf("kind", "Second "+kind+" plugin", "Only one %s plugin may be configured; plugin %q at %s is one already.", kind, other.Name, other.Range)
			default:
				p.Kind = k
				first[k] = p
			}
		}
		if d.path(a, "path", &p.Path) {
			// exec looks a bare name up in $PATH; the file means the binary
			// next to it.
			if !strings.ContainsRune(p.Path, filepath.Separator) {
				p.Path = "." + string(filepath.Separator) + p.Path
			}
			if d.checkFiles {
				checkBinary(a, p.Path)
			}
		}
		a.strings("args", &p.Args)
		if a.str("sha256", &p.SHA256) {
			p.SHA256 = strings.ToLower(p.SHA256)
			if sum, err := hex.DecodeString(p.SHA256); err != nil || len(sum) != 32 {
				a.invalid("sha256", "want 64 hex characters, the binary's SHA-256 as sha256sum prints it; got %q", p.SHA256)
			}
		}
		if c := d.single(inner, "config"); c != nil {
			p.Body = c.Body
		}
		plugins = append(plugins, p)
	}
	for _, k := range requiredKinds {
		if first[k] == nil {
			name := sdk.KindName(k)
			d.errorAt(fileStart(d.filename), "No "+name+" plugin", "A plugin block with kind = %q is required.", name)
		}
	}
	return plugins
}

// checkBinary catches a wrong path at load, at its line, rather than when
// the supervisor first starts the plugin.
func checkBinary(a attrs, path string) {
	info, err := os.Stat(path)
	switch {
	case err != nil:
		a.errorf("path", "Plugin binary not found", "%v (relative paths are resolved against the configuration file's directory)", err)
	case info.IsDir():
		a.errorf("path", "Plugin path is a directory", "%s is a directory, not a plugin binary", path)
	case info.Mode().Perm()&0o111 == 0:
		a.errorf("path", "Plugin binary is not executable", "%s has mode %s", path, info.Mode())
	}
}

// DecodeConfig decodes the plugin's `config {}` block against the schema
// the plugin sent, into the JSON its SetConfig takes. Typos and wrong types
// are reported at their location; with no block, the result is the
// schema's defaults.
func (p *Plugin) DecodeConfig(s *pb.ConfigSchema) ([]byte, hcl.Diagnostics) {
	missing := p.Range
	if p.Body != nil {
		missing = p.Body.MissingItemRange()
	}
	out, diags := schema.Decode(p.Body, s, missing)
	return out, sortDiagnostics(diags)
}

// FieldDiagnostics places the field errors a plugin's SetConfig returned on
// the attributes of its `config {}` block, or on the plugin block when the
// attribute is not written in the file.
func (p *Plugin) FieldDiagnostics(errs sdk.FieldErrors) hcl.Diagnostics {
	return schema.FieldDiagnostics(errs, p.Body, p.Range, p.Name)
}
