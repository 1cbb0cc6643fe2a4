// Package config reads the host's HCL configuration file and validates it,
// reporting every mistake at its file, line and column.
//
// The file looks like this (comments say which parts are optional):
//
//	state_dir = "state"                  # optional, default "state"
//	api {                                # block optional
//	  address    = "127.0.0.1:7311"      # loopback only: 127.0.0.0/8, ::1 or localhost
//	  token_file = "state/api-token"     # default <state_dir>/api-token
//	}
//	loop {                               # block optional; every attribute optional
//	  interval            = "5s"
//	  metrics_window      = "1m"
//	  health_interval     = "2s"
//	  call_timeout        = "2s"
//	  consent_timeout     = "5s"
//	  restart_backoff_min = "200ms"
//	  restart_backoff_max = "30s"
//	  migration_bandwidth = "1GiB"       # bytes per second
//	  migration_downtime  = "300ms"
//	}
//	plugin "vertigo-scaler" {            # label = the name the plugin must report
//	  kind   = "scaler"                  # scaler | placement | hypervisor | network
//	  path   = "bin/vertigo-scaler"
//	  args   = []                        # optional
//	  sha256 = "..."                     # optional pin, 64 hex characters
//	  config { mode = "default" }        # optional, decoded by the plugin's schema
//	}
//	node "node-a" { vcpus = 8  memory = "16GiB"  watermark = 0.9 }  # watermark optional
//	vm "pg-1" {
//	  node = "node-a"                    # optional: placement chooses when absent
//	  min_vcpus  = 0.5     max_vcpus  = 4       unit_vcpus  = 0.25
//	  min_memory = "1GiB"  max_memory = "8GiB"  unit_memory = "512MiB"
//	  vcpus = 1  memory = "2GiB"         # optional initial size, default the minimum
//	}
//
// Exactly one scaler and one placement plugin are required, at most one
// hypervisor and one network plugin, and at least one node. Sizes are
// "512MiB", "4GiB", "2GB" or a number of bytes; vCPUs are numbers with at
// most three decimals (they are stored in milli-vCPUs); durations are Go
// durations ("250ms", "1m"). Relative paths are resolved against the
// directory of the file.
package config

import (
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/vertigo-autoscaler/vertigo/host/model"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// Config is a validated configuration file.
type Config struct {
	File     string
	StateDir string
	API      API
	Loop     Loop
	Plugins  []*Plugin // in file order
	Nodes    []model.Node
	VMs      []VMSpec
}

// API is where the host serves its local API.
type API struct {
	Address   string
	TokenFile string
}

// Loop tunes the control loop and the plugin supervisor.
type Loop struct {
	Interval          time.Duration
	MetricsWindow     time.Duration
	HealthInterval    time.Duration
	CallTimeout       time.Duration
	ConsentTimeout    time.Duration
	RestartBackoffMin time.Duration
	RestartBackoffMax time.Duration
	// MigrationBandwidth is in bytes per second.
	MigrationBandwidth uint64
	MigrationDowntime  time.Duration
}

// Plugin is one `plugin` block.
type Plugin struct {
	Name   string
	Kind   pb.Kind
	Path   string
	Args   []string
	SHA256 string
	// Body is the `config {}` block's body, nil when absent. It is decoded
	// once the plugin has sent its schema (DecodeConfig).
	Body hcl.Body
	// Range is the block's definition range, where errors that concern no
	// attribute in particular are reported.
	Range hcl.Range
}

// VMSpec is one `vm` block.
type VMSpec struct {
	Name string
	// Node pins the VM; empty lets placement choose.
	Node string
	// Image names the guest image the hypervisor boots; "" is its default.
	Image   string
	Initial model.Size
	Bounds  model.Bounds
	Range   hcl.Range
}

// Plugin returns the plugin of the given kind, nil when none is configured.
func (c *Config) Plugin(kind pb.Kind) *Plugin {
	for _, p := range c.Plugins {
		if p.Kind == kind {
			return p
		}
	}
	return nil
}

// Load parses and validates the file at path, and checks that every plugin
// binary it names exists. Relative paths are resolved against the file's
// directory. diags holds every error found, each with its range, in file
// order; only a syntax error stops the analysis, since what follows it is
// the parser's guess. Config is nil when diags has errors.
func Load(path string) (*Config, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read configuration file",
			Detail:   err.Error(),
			Subject:  fileStart(path).Ptr(),
		}}
	}
	return parse(src, path, filepath.Dir(path), true)
}

// Parse is Load from memory: paths are resolved against "." and the
// filesystem is not consulted.
func Parse(src []byte, filename string) (*Config, hcl.Diagnostics) {
	return parse(src, filename, ".", false)
}

// fileStart is where an error about the file as a whole (something missing
// from it) is reported.
func fileStart(filename string) hcl.Range {
	start := hcl.Pos{Line: 1, Column: 1}
	return hcl.Range{Filename: filename, Start: start, End: start}
}
