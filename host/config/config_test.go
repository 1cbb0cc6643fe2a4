package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/config"
	"github.com/vertigo-autoscaler/vertigo/host/model"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

const gib = 1 << 30

// plugins is the smallest valid set of plugin blocks, for tests about the
// rest of the file.
const plugins = `
plugin "s" {
  kind = "scaler"
  path = "s"
}
plugin "p" {
  kind = "placement"
  path = "p"
}
`

func parseFile(t *testing.T, path string) *config.Config {
	t.Helper()
	src, err := os.ReadFile(path)
	require.NoError(t, err)
	cfg, diags := config.Parse(src, filepath.Base(path))
	require.Empty(t, diags, config.Format(diags))
	require.NotNil(t, cfg)
	return cfg
}

func TestParseReadsEveryAttribute(t *testing.T) {
	cfg := parseFile(t, "testdata/good.hcl")

	require.Equal(t, "good.hcl", cfg.File)
	require.Equal(t, "/var/lib/vertigo", cfg.StateDir)
	require.Equal(t, config.API{Address: "[::1]:7400", TokenFile: "secrets/token"}, cfg.API)
	require.Equal(t, config.Loop{
		Interval:           10 * time.Second,
		MetricsWindow:      2 * time.Minute,
		HealthInterval:     time.Second,
		CallTimeout:        3 * time.Second,
		ConsentTimeout:     4 * time.Second,
		RestartBackoffMin:  100 * time.Millisecond,
		RestartBackoffMax:  time.Minute,
		MigrationBandwidth: 512 << 20,
		MigrationDowntime:  50 * time.Millisecond,
	}, cfg.Loop)

	require.Len(t, cfg.Plugins, 4)
	type plugin struct {
		Name, Path, SHA256 string
		Kind               pb.Kind
		Args               []string
		HasConfig          bool
		Line               int
	}
	var got []plugin
	for _, p := range cfg.Plugins {
		got = append(got, plugin{p.Name, p.Path, p.SHA256, p.Kind, p.Args, p.Body != nil, p.Range.Start.Line})
	}
	require.Equal(t, []plugin{
		{"vertigo-scaler", "bin/vertigo-scaler", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", pb.Kind_KIND_SCALER, []string{"-v", "--mode=x"}, true, 21},
		{"vertigo-placement", "/opt/vertigo/placement", "", pb.Kind_KIND_PLACEMENT, nil, false, 31},
		{"qemu", "bin/hv", "", pb.Kind_KIND_HYPERVISOR, nil, false, 36},
		{"bridge", "bin/net", "", pb.Kind_KIND_NETWORK, nil, false, 41},
	}, got)
	for _, p := range cfg.Plugins {
		require.Same(t, p, cfg.Plugin(p.Kind))
	}

	require.Equal(t, []model.Node{
		{Name: "node-a", Capacity: model.Size{VCPUMilli: 8000, MemoryBytes: 16 * gib}, Watermark: 0.9},
		{Name: "node-b", Capacity: model.Size{VCPUMilli: 2500, MemoryBytes: 4 * gib}, Watermark: 1},
	}, cfg.Nodes)

	require.Len(t, cfg.VMs, 2)
	require.Equal(t, 57, cfg.VMs[0].Range.Start.Line)
	require.Equal(t, "good.hcl", cfg.VMs[0].Range.Filename)
	for i := range cfg.VMs {
		cfg.VMs[i].Range = hcl.Range{}
	}
	require.Equal(t, []config.VMSpec{
		{
			Name: "pg-1", Node: "node-a",
			Initial: model.Size{VCPUMilli: 1300, MemoryBytes: 2 * gib},
			Bounds: model.Bounds{
				Min:  model.Size{VCPUMilli: 500, MemoryBytes: gib},
				Max:  model.Size{VCPUMilli: 4000, MemoryBytes: 8 * gib},
				Unit: model.Size{VCPUMilli: 250, MemoryBytes: 512 << 20},
			},
		},
		{
			Name:    "pg-2",
			Initial: model.Size{VCPUMilli: 1000, MemoryBytes: 1536 << 20},
			Bounds: model.Bounds{
				Min:  model.Size{VCPUMilli: 1000, MemoryBytes: 1536 << 20},
				Max:  model.Size{VCPUMilli: 2000, MemoryBytes: 4 * gib},
				Unit: model.Size{VCPUMilli: 500, MemoryBytes: 256 << 20},
			},
		},
	}, cfg.VMs)
}

func TestParseFillsDefaults(t *testing.T) {
	cfg := parseFile(t, "testdata/good_minimal.hcl")

	require.Equal(t, "state", cfg.StateDir)
	require.Equal(t, config.API{Address: "127.0.0.1:7311", TokenFile: filepath.Join("state", "api-token")}, cfg.API)
	require.Equal(t, config.Loop{
		Interval:           5 * time.Second,
		MetricsWindow:      time.Minute,
		HealthInterval:     2 * time.Second,
		CallTimeout:        2 * time.Second,
		ConsentTimeout:     5 * time.Second,
		RestartBackoffMin:  200 * time.Millisecond,
		RestartBackoffMax:  30 * time.Second,
		MigrationBandwidth: gib,
		MigrationDowntime:  300 * time.Millisecond,
	}, cfg.Loop)
	require.Equal(t, 0.9, cfg.Nodes[0].Watermark)
	require.Nil(t, cfg.Plugin(pb.Kind_KIND_HYPERVISOR))
	require.Nil(t, cfg.Plugin(pb.Kind_KIND_NETWORK))
	require.Nil(t, cfg.Plugins[0].Body)
	// Not "s", which exec would look up in $PATH.
	require.Equal(t, "./s", cfg.Plugins[0].Path)
	require.Empty(t, cfg.VMs)
}

// The file `make run` starts: it must parse clean and run a real fleet (a
// hypervisor, two nodes to migrate between, VMs placement can place).
func TestDefaultConfigFileIsValid(t *testing.T) {
	cfg := parseFile(t, "../../config.hcl")
	for _, k := range []pb.Kind{pb.Kind_KIND_SCALER, pb.Kind_KIND_PLACEMENT, pb.Kind_KIND_HYPERVISOR} {
		require.NotNil(t, cfg.Plugin(k), "no %s plugin", k)
	}
	require.GreaterOrEqual(t, len(cfg.Nodes), 2)
	require.NotEmpty(t, cfg.VMs)
	for _, v := range cfg.VMs {
		require.True(t, v.Bounds.Max.Fits(cfg.Nodes[0].Capacity), "%s cannot reach its max on a node", v.Name)
	}
}

func TestVCPUsAreMilli(t *testing.T) {
	for in, want := range map[string]int64{"1": 1000, "0.3": 300, "1.001": 1001, "2.675": 2675, "0.001": 1} {
		src := plugins + `node "n" {` + "\nvcpus = " + in + "\nmemory = \"1GiB\"\n}\n"
		cfg, diags := config.Parse([]byte(src), "f.hcl")
		require.Empty(t, diags, "%s: %s", in, config.Format(diags))
		require.Equal(t, want, cfg.Nodes[0].Capacity.VCPUMilli, in)
	}
}

func TestAPIAddressMustBeLoopback(t *testing.T) {
	for addr, wantErr := range map[string]string{
		"127.0.0.1:7311":         "",
		"127.8.9.10:1":           "",
		"[::1]:7311":             "",
		"localhost:7311":         "",
		"0.0.0.0:7311":           "not a loopback address",
		"10.0.0.1:7311":          "not a loopback address",
		"[::]:7311":              "not a loopback address",
		"db.example.com:7311":    "not a loopback address",
		":7311":                  "not a loopback address",
		"localhost":              "missing port",
		"127.0.0.1:http":         "not a number",
		"127.0.0.1:65536":        "not a number",
		"[::ffff:10.0.0.1]:7311": "not a loopback address",
	} {
		src := `api { address = "` + addr + `" }` + plugins + `node "n" {
  vcpus  = 1
  memory = 1024
}`
		cfg, diags := config.Parse([]byte(src), "f.hcl")
		if wantErr == "" {
			require.Empty(t, diags, "%s: %s", addr, config.Format(diags))
			require.Equal(t, addr, cfg.API.Address)
			continue
		}
		require.Len(t, diags, 1, addr)
		require.Equal(t, 1, diags[0].Subject.Start.Line, addr)
		require.Contains(t, diags[0].Detail, wantErr, addr)
	}
}

// hcl reports unknown attributes in map order; the report must not vary.
func TestDiagnosticsAreInFileOrder(t *testing.T) {
	src := plugins + `node "n" {
  vcpus  = 1
  memory = "1GiB"
  a = 1
  b = 2
  c = 3
  d = 4
  e = 5
  f = 6
}`
	var first string
	for range 20 {
		_, diags := config.Parse([]byte(src), "f.hcl")
		require.Len(t, diags, 6)
		for i := 1; i < len(diags); i++ {
			require.Less(t, diags[i-1].Subject.Start.Line, diags[i].Subject.Start.Line)
		}
		if first == "" {
			first = config.Format(diags)
		}
		require.Equal(t, first, config.Format(diags))
	}
}

// writeFile writes content under dir, creating parent directories.
func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) {
	t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), mode))
}

func TestLoadResolvesPathsAgainstTheFilesDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "bin/s", "#!/bin/sh\n", 0o755)
	placement := filepath.Join(t.TempDir(), "p")
	writeFile(t, filepath.Dir(placement), "p", "#!/bin/sh\n", 0o755)
	writeFile(t, dir, "etc/vertigo.hcl", `
state_dir = "../var"
plugin "s" {
  kind = "scaler"
  path = "../bin/s"
}
plugin "p" {
  kind = "placement"
  path = "`+placement+`"
}
node "n" {
  vcpus  = 1
  memory = "1GiB"
}
`, 0o644)

	file := filepath.Join(dir, "etc", "vertigo.hcl")
	cfg, diags := config.Load(file)
	require.Empty(t, diags, config.Format(diags))
	require.Equal(t, file, cfg.File)
	require.Equal(t, filepath.Join(dir, "var"), cfg.StateDir)
	require.Equal(t, filepath.Join(dir, "var", "api-token"), cfg.API.TokenFile)
	require.Equal(t, filepath.Join(dir, "bin", "s"), cfg.Plugins[0].Path)
	require.Equal(t, placement, cfg.Plugins[1].Path)
}

func TestLoadChecksPluginBinaries(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "bin/plain", "not executable", 0o644)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "bin", "dir"), 0o755))
	src := `
plugin "s" {
  kind = "scaler"
  path = "bin/missing"
}
plugin "p" {
  kind = "placement"
  path = "bin/plain"
}
plugin "h" {
  kind = "hypervisor"
  path = "bin/dir"
}
node "n" {
  vcpus  = 1
  memory = "1GiB"
}
`
	writeFile(t, dir, "vertigo.hcl", src, 0o644)

	cfg, diags := config.Load(filepath.Join(dir, "vertigo.hcl"))
	require.Nil(t, cfg)
	require.Len(t, diags, 3, config.Format(diags))
	for i, want := range []struct {
		line    int
		summary string
	}{{4, "Plugin binary not found"}, {8, "Plugin binary is not executable"}, {12, "Plugin path is a directory"}} {
		require.Equal(t, want.line, diags[i].Subject.Start.Line)
		require.Equal(t, want.summary, diags[i].Summary)
	}

	// From memory, the filesystem is not consulted.
	cfg, diags = config.Parse([]byte(src), "vertigo.hcl")
	require.Empty(t, diags, config.Format(diags))
	require.NotNil(t, cfg)
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.hcl")
	cfg, diags := config.Load(path)
	require.Nil(t, cfg)
	require.Len(t, diags, 1)
	require.True(t, strings.HasPrefix(config.Format(diags), path+":1,1-1: Cannot read configuration file; "), config.Format(diags))
}
