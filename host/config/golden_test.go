package config_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/config"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current diagnostics")

// TestGolden parses every testdata/*.hcl and compares Format(diags) with its
// .golden file. Files named good*.hcl must be valid; every other file must
// be rejected.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.hcl")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		base := filepath.Base(file)
		name := strings.TrimSuffix(base, ".hcl")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(file)
			require.NoError(t, err)
			cfg, diags := config.Parse(src, base)
			got := config.Format(diags)

			golden := strings.TrimSuffix(file, ".hcl") + ".golden"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run go test ./host/config -update to create it")
			require.Equal(t, string(want), got)

			if strings.HasPrefix(name, "good") {
				require.Empty(t, diags)
				require.NotNil(t, cfg)
				return
			}
			require.True(t, diags.HasErrors())
			require.Nil(t, cfg)
			for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
				require.True(t, strings.HasPrefix(line, base+":"), "location first: %s", line)
			}
		})
	}
}
