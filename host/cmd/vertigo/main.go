// Command vertigo is the Vertigo host: it runs the fleet (`run`), checks a
// configuration (`validate`), shows the fleet (`status`), checks third-party
// plugins (`plugin conformance`) and measures itself (`bench`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/vertigo-autoscaler/vertigo/host/bench"
	"github.com/vertigo-autoscaler/vertigo/host/config"
	"github.com/vertigo-autoscaler/vertigo/host/daemon"
)

const usage = `usage: vertigo <command> [flags]

commands:
  run -config FILE                      run the host (plugins, control loop, API)
  validate FILE                         check a config file, plugins' config blocks included
  status [-config FILE] [-watch]        show nodes, VMs, plugins and migrations
  tick [-config FILE]                   run one control-loop pass now (needs the API token)
  vm load NAME [--cpu N] [--mem SIZE] [--for D]
                                        make a VM's guest busy, to watch it scale
  vm migrate NAME --to NODE             live-migrate a VM now, with a progress bar
  plugin conformance KIND BINARY [-config FILE]
                                        run the SDK's conformance suite against a plugin binary
  bench plugin-call|placement|idle|react|migrate
                                        measure; the last line is key=value figures
  simulate --trace FILE [flags]         replay a utilisation trace through the real scaler and
                                        placement plugins, comparing four policies (--help)
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run returns the process exit code: 0 ok, 1 failure, 2 usage.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(ctx, args[1:], stderr)
	case "validate":
		err = cmdValidate(ctx, args[1:], stdout, stderr)
	case "status":
		err = cmdStatus(ctx, args[1:], stdout)
	case "tick":
		err = cmdTick(ctx, args[1:], stdout)
	case "vm":
		err = cmdVM(ctx, args[1:], stdout)
	case "plugin":
		err = cmdPlugin(ctx, args[1:], stdout, stderr)
	case "bench":
		err = cmdBench(ctx, args[1:], stdout, stderr)
	case "simulate":
		err = cmdSimulate(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "vertigo: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	var ue usageError
	var be *bench.UsageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &be):
		fmt.Fprintf(stderr, "vertigo: %v\n", err)
		return 2
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "vertigo: %v\n\n%s", err, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "vertigo: %v\n", err)
		return 1
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// logger logs at VERTIGO_LOG_LEVEL, or at level when it is unset.
func logger(w io.Writer, level hclog.Level) hclog.Logger {
	if l := hclog.LevelFromString(os.Getenv("VERTIGO_LOG_LEVEL")); l != hclog.NoLevel {
		level = l
	}
	return hclog.New(&hclog.LoggerOptions{Name: "vertigo", Output: w, Level: level})
}

// loadConfig loads and validates the file, returning its diagnostics as the
// error text (every line starts with file:line,col).
func loadConfig(path string) (*config.Config, error) {
	cfg, diags := config.Load(path)
	if diags.HasErrors() {
		return nil, &daemon.ConfigError{Text: config.Format(diags)}
	}
	return cfg, nil
}

func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "config.hcl", "configuration file")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	log := logger(stderr, hclog.Info)
	h, err := daemon.Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer h.Close()
	h.Run(ctx)
	log.Info("shutting down; VMs keep running")
	return nil
}

func cmdValidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 {
		return usageError{"validate takes one file"}
	}
	cfg, err := loadConfig(args[0])
	if err != nil {
		return err
	}
	// Quiet: plugins starting and stopping is not news when validating.
	plugins, diags := daemon.StartPlugins(ctx, cfg, logger(stderr, hclog.Warn).Named("validate"), nil)
	if diags.HasErrors() {
		return &daemon.ConfigError{Text: config.Format(diags)}
	}
	plugins.Stop()
	fmt.Fprintf(stdout, "%s: ok (%d plugins, %d nodes, %d VMs)\n", args[0], len(cfg.Plugins), len(cfg.Nodes), len(cfg.VMs))
	return nil
}
