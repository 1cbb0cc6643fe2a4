package config_test

import (
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/config"
)

func TestFormat(t *testing.T) {
	at := &hcl.Range{Filename: "f.hcl", Start: hcl.Pos{Line: 3, Column: 2}, End: hcl.Pos{Line: 4, Column: 7}}
	diags := hcl.Diagnostics{
		{Severity: hcl.DiagError, Summary: "Broken", Detail: "first line\n  second line", Subject: at},
		{Severity: hcl.DiagWarning, Summary: "Odd", Subject: at},
		{Severity: hcl.DiagError, Summary: "Nowhere", Detail: "no location"},
	}
	require.Equal(t,
		"f.hcl:3,2-4,7: Broken; first line second line\n"+
			"f.hcl:3,2-4,7: warning: Odd\n"+
			"<unknown location>: Nowhere; no location\n",
		config.Format(diags))
	require.Empty(t, config.Format(nil))
}
