package simulate

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// binDir holds the plugin binaries, built once per test run.
var (
	binDir   string
	buildErr error
	build    sync.Once
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vertigo-sim-bin-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// pluginBinaries builds the real scaler and placement plugins, as the
// simulator runs them in production, and returns their paths.
func pluginBinaries(t testing.TB) (scaler, placement string) {
	t.Helper()
	build.Do(func() {
		root, err := filepath.Abs("../..")
		if err != nil {
			buildErr = err
			return
		}
		for name, pkg := range map[string]string{"vertigo-scaler": "./plugins/scaler", "vertigo-placement": "./plugins/placement"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, name), pkg)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = &buildError{pkg, string(out), err}
				return
			}
		}
	})
	require.NoError(t, buildErr)
	return filepath.Join(binDir, "vertigo-scaler"), filepath.Join(binDir, "vertigo-placement")
}

type buildError struct {
	pkg, out string
	err      error
}

func (e *buildError) Error() string { return "go build " + e.pkg + ": " + e.err.Error() + "\n" + e.out }
