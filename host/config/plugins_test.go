package config_test

import (
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/config"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
	"github.com/vertigo-autoscaler/vertigo/sdk/schema"
)

var scalerSchema = schema.Of(
	schema.String("mode", "default", "how eagerly to scale", "default", "aggressive"),
	schema.Number("target", 0.75, "target utilisation"),
	schema.Duration("window", time.Minute, "metrics window"),
	schema.Bytes("headroom", 100<<20, "memory kept free"),
)

// scaler parses a file whose scaler plugin block is given, and returns that
// plugin.
func scaler(t *testing.T, block string) *config.Plugin {
	t.Helper()
	src := block + `
plugin "p" {
  kind = "placement"
  path = "p"
}
node "n" {
  vcpus  = 1
  memory = "1GiB"
}
`
	cfg, diags := config.Parse([]byte(src), "f.hcl")
	require.Empty(t, diags, config.Format(diags))
	return cfg.Plugin(pb.Kind_KIND_SCALER)
}

func TestDecodeConfigDefaultsWithoutBlock(t *testing.T) {
	p := scaler(t, `plugin "s" {
  kind = "scaler"
  path = "s"
}`)
	js, diags := p.DecodeConfig(scalerSchema)
	require.Empty(t, diags)
	require.JSONEq(t, `{"mode":"default","target":0.75,"window":60000000000,"headroom":104857600}`, string(js))
}

func TestDecodeConfigMergesBlockWithDefaults(t *testing.T) {
	p := scaler(t, `plugin "s" {
  kind = "scaler"
  path = "s"
  config {
    mode     = "aggressive"
    headroom = "1GiB"
  }
}`)
	js, diags := p.DecodeConfig(scalerSchema)
	require.Empty(t, diags)
	require.JSONEq(t, `{"mode":"aggressive","target":0.75,"window":60000000000,"headroom":1073741824}`, string(js))
}

func TestDecodeConfigReportsTyposAndTypesAtTheirLine(t *testing.T) {
	p := scaler(t, `plugin "s" {
  kind = "scaler"
  path = "s"
  config {
    mode   = "default"
    targte = 0.8
    window = 5
  }
}`)
	js, diags := p.DecodeConfig(scalerSchema)
	require.Nil(t, js)
	require.Equal(t,
		"f.hcl:6,5-11: Unsupported argument; An argument named \"targte\" is not expected here. Did you mean \"target\"?\n"+
			"f.hcl:7,14-15: Invalid value for window; want a string, got number\n",
		config.Format(diags))
}

func TestDecodeConfigMissingRequired(t *testing.T) {
	required := schema.Of(schema.Required(schema.String("endpoint", "", "where to send")))
	withoutBlock := scaler(t, `plugin "s" {
  kind = "scaler"
  path = "s"
}`)
	_, diags := withoutBlock.DecodeConfig(required)
	require.Len(t, diags, 1)
	require.Equal(t, withoutBlock.Range, *diags[0].Subject)
	require.Equal(t, "Missing required argument", diags[0].Summary)

	withBlock := scaler(t, `plugin "s" {
  kind = "scaler"
  path = "s"
  config {
  }
}`)
	_, diags = withBlock.DecodeConfig(required)
	require.Len(t, diags, 1)
	require.Equal(t, 4, diags[0].Subject.Start.Line, config.Format(diags))
}

func TestFieldDiagnosticsPointAtTheAttribute(t *testing.T) {
	p := scaler(t, `plugin "s" {
  kind = "scaler"
  path = "s"
  config {
    target = 3
  }
}`)
	diags := p.FieldDiagnostics(sdk.FieldErrors{
		{Field: "target", Message: "must be in (0, 1]"},
		{Field: "window", Message: "must exceed the loop interval"},
	})
	require.Equal(t,
		"f.hcl:5,14-15: Plugin s rejects target; must be in (0, 1]\n"+
			"f.hcl:1,1-11: Plugin s rejects window; must exceed the loop interval\n",
		config.Format(diags))
}

func TestFieldDiagnosticsWithoutBlockPointAtThePlugin(t *testing.T) {
	p := scaler(t, `plugin "s" {
  kind = "scaler"
  path = "s"
}`)
	diags := p.FieldDiagnostics(sdk.FieldErrors{{Field: "mode", Message: "unsupported"}})
	require.Len(t, diags, 1)
	require.Equal(t, hcl.DiagError, diags[0].Severity)
	require.Equal(t, p.Range, *diags[0].Subject)
}
