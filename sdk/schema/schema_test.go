package schema

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/sdk"
)

var testSchema = Of(
	String("mode", "default", "mode", "default", "neon"),
	Number("target", 0.9, "target"),
	Bool("debug", false, "debug"),
	Duration("window", time.Minute, "window"),
	Bytes("reserve", 100<<20, "reserve"),
	Required(String("name", "", "name")),
)

func body(t *testing.T, src string) hcl.Body {
	f, diags := hclsyntax.ParseConfig([]byte(src), "p.hcl", hcl.InitialPos)
	require.False(t, diags.HasErrors(), diags.Error())
	return f.Body
}

func TestDecodeFillsDefaultsAndConverts(t *testing.T) {
	js, diags := Decode(body(t, `
name = "x"
window = "5s"
reserve = "1GiB"
`), testSchema, hcl.Range{})
	require.False(t, diags.HasErrors(), diags.Error())
	var got map[string]any
	require.NoError(t, json.Unmarshal(js, &got))
	require.Equal(t, map[string]any{
		"mode": "default", "target": 0.9, "debug": false, "name": "x",
		"window": float64(5 * time.Second), "reserve": float64(1 << 30),
	}, got)
}

func TestDecodeReportsEveryMistakeAtItsPlace(t *testing.T) {
	_, diags := Decode(body(t, `debgu = true
mode = "fast"
target = "high"
window = "soon"
`), testSchema, hcl.Range{Filename: "p.hcl", Start: hcl.Pos{Line: 9, Column: 1}, End: hcl.Pos{Line: 9, Column: 1}})
	require.True(t, diags.HasErrors())
	var lines []string
	for _, d := range diags {
		lines = append(lines, d.Subject.String()+": "+d.Summary+": "+d.Detail)
	}
	require.Contains(t, lines[0], `p.hcl:1,1-6: Unsupported argument`)
	require.Contains(t, lines[0], `Did you mean "debug"?`)
	joined := ""
	for _, l := range lines {
		joined += l + "\n"
	}
	require.Contains(t, joined, `p.hcl:2,8-14: Invalid value for mode: "fast" is not one of "default", "neon"`)
	require.Contains(t, joined, `p.hcl:3,10-16: Invalid value for target: want a number, got string`)
	require.Contains(t, joined, `p.hcl:4,10-16: Invalid value for window`)
	require.Contains(t, joined, `p.hcl:9,1-1: Missing required argument`)
}

func TestDefaults(t *testing.T) {
	_, err := Defaults(testSchema)
	require.ErrorContains(t, err, `"name" is required`)
	js, err := Defaults(Of(Number("n", 2, "")))
	require.NoError(t, err)
	require.JSONEq(t, `{"n":2}`, string(js))
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]uint64{"512MiB": 512 << 20, "4GiB": 4 << 30, "1.5GiB": 3 << 29, "2GB": 2e9, "1048576": 1 << 20, " 1 kib ": 1024} {
		got, err := ParseBytes(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "GiB", "4 gigs", "1.5B", "-1"} {
		_, err := ParseBytes(bad)
		require.Error(t, err, bad)
	}
}

func TestFieldDiagnostics(t *testing.T) {
	b := body(t, "target = 7\n")
	fallback := hcl.Range{Filename: "p.hcl", Start: hcl.Pos{Line: 20, Column: 1}}
	diags := FieldDiagnostics(sdk.FieldErrors{{Field: "target", Message: "must be in (0,1]"}, {Field: "other", Message: "x"}}, b, fallback, "vertigo-scaler")
	require.Len(t, diags, 2)
	require.Equal(t, 1, diags[0].Subject.Start.Line)
	require.Equal(t, "Plugin vertigo-scaler rejects target", diags[0].Summary)
	require.Equal(t, 20, diags[1].Subject.Start.Line)
}
