package daemon

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"

	"github.com/vertigo-autoscaler/vertigo/host/config"
	"github.com/vertigo-autoscaler/vertigo/host/supervisor"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// Plugins are the configured plugins, started and configured.
type Plugins struct {
	ByKind map[pb.Kind]*supervisor.Plugin
}

// Stop kills every plugin.
func (ps *Plugins) Stop() {
	for _, p := range ps.ByKind {
		p.Stop()
	}
}

// StartPlugins starts every configured plugin: each sends its config
// schema, its `config {}` block is decoded against it, and it is configured. Every problem comes back as a diagnostic at its place in the
// file; on any error nothing is left running, so the host never runs
// half-configured. `vertigo validate` is exactly this, then Stop.
func StartPlugins(ctx context.Context, cfg *config.Config, log hclog.Logger, onRestart func(string, error)) (*Plugins, hcl.Diagnostics) {
	ps := &Plugins{ByKind: map[pb.Kind]*supervisor.Plugin{}}
	var diags hcl.Diagnostics
	dir, err := filepath.Abs(filepath.Dir(cfg.File))
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot resolve the config's directory", Detail: err.Error()}}
	}
	for _, pc := range cfg.Plugins {
		// Absolute, because exec resolves a relative path against Dir.
		path, err := filepath.Abs(pc.Path)
		if err != nil {
			diags = append(diags, pluginDiag(pc, "Cannot resolve the plugin's path", err))
			continue
		}
		var decodeDiags hcl.Diagnostics
		p, err := supervisor.Start(ctx, supervisor.Spec{
			Name: pc.Name, Kind: pc.Kind, Path: path, Args: pc.Args, SHA256: pc.SHA256, Dir: dir,
			Config: func(s *pb.ConfigSchema) ([]byte, error) {
				js, d := pc.DecodeConfig(s)
				decodeDiags = d
				if d.HasErrors() {
					return nil, errBadConfig
				}
				return js, nil
			},
		}, supervisor.Options{
			HealthInterval: cfg.Loop.HealthInterval,
			CallTimeout:    cfg.Loop.CallTimeout,
			BackoffMin:     cfg.Loop.RestartBackoffMin,
			BackoffMax:     cfg.Loop.RestartBackoffMax,
			Logger:         log.Named("plugin"),
			OnRestart:      onRestart,
		})
		diags = append(diags, decodeDiags...)
		var fe sdk.FieldErrors
		switch {
		case errors.Is(err, errBadConfig):
		case errors.As(err, &fe):
			diags = append(diags, pc.FieldDiagnostics(fe)...)
		case err != nil:
			diags = append(diags, pluginDiag(pc, "Plugin failed to start", err))
		default:
			ps.ByKind[pc.Kind] = p
		}
	}
	if diags.HasErrors() {
		ps.Stop()
		return nil, diags
	}
	return ps, diags
}

// errBadConfig stops a start whose config block did not decode; the
// diagnostics say why.
var errBadConfig = errors.New("plugin config block does not decode")

func pluginDiag(pc *config.Plugin, summary string, err error) *hcl.Diagnostic {
	r := pc.Range
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary + ": " + pc.Name, Detail: err.Error(), Subject: &r}
}
