package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/vertigo-autoscaler/vertigo/host/bench"
	"github.com/vertigo-autoscaler/vertigo/host/config"
	"github.com/vertigo-autoscaler/vertigo/host/daemon"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	"github.com/vertigo-autoscaler/vertigo/sdk/conformance"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

const conformanceUsage = `plugin conformance KIND BINARY [-config FILE] [-nodes A,B]
  -config FILE  the plugin's configuration: FILE's body is what a config {} block holds;
                the plugin runs in FILE's directory, as under the host
  -nodes A,B    the nodes VMs are started on and migrated between (default node-a,node-b)`

// killWait bounds how long a SIGKILLed plugin may take to be gone.
const killWait = 5 * time.Second

// cmdPlugin runs `plugin conformance`: it launches the binary as the host
// would (AutoMTLS, gRPC only) and runs the SDK's suite, relaunching the
// binary for the recovery specs; any failed spec makes the exit code
// non-zero.
func cmdPlugin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "conformance" {
		return usageError{conformanceUsage}
	}
	fs := flag.NewFlagSet("plugin conformance", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configPath := fs.String("config", "", "")
	nodes := fs.String("nodes", "", "")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil || len(pos) != 2 {
		return usageError{conformanceUsage}
	}
	kind, err := sdk.ParseKind(pos[0])
	if err != nil {
		return usageError{err.Error()}
	}
	procs, err := newPluginProcesses(pos[1], *configPath, logger(stderr, hclog.Warn).Named("plugin"))
	if err != nil {
		return err
	}
	defer procs.stop()
	first, err := procs.launch()
	if err != nil {
		return err
	}
	opts := conformance.Options{
		Relaunch: func(context.Context) (*sdk.Client, error) {
			l, err := procs.launch()
			if err != nil {
				return nil, err
			}
			return l.Client, nil
		},
		Kill: procs.kill,
	}
	if *nodes != "" {
		opts.Nodes = strings.Split(*nodes, ",")
	}
	if *configPath != "" {
		if opts.ConfigJSON, err = pluginConfig(ctx, *configPath, kind, first.Client); err != nil {
			return err
		}
	}
	res, err := conformance.RunWith(ctx, kind, first.Client, stdout, opts)
	if err != nil {
		return err
	}
	if res.Failed > 0 {
		return fmt.Errorf("%s failed %d of %d conformance specs", pos[1], res.Failed, res.Passed+res.Failed)
	}
	return nil
}

// parseInterspersed parses fs's flags wherever they stand among args and
// returns the other arguments, in order.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// pluginConfig decodes the HCL file at path against the schema the plugin
// sends, as the host decodes a plugin's config {} block, and sends it once:
// values the plugin rejects are reported at their place in the file, not
// as the setup failure of every spec.
func pluginConfig(ctx context.Context, path string, kind pb.Kind, c *sdk.Client) ([]byte, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	file, diags := hclsyntax.ParseConfig(src, path, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, &daemon.ConfigError{Text: config.Format(diags)}
	}
	resp, err := c.Base.ConfigSchema(ctx, &pb.ConfigSchemaRequest{})
	if err != nil {
		return nil, fmt.Errorf("asking the plugin for its config schema: %w", err)
	}
	p := &config.Plugin{Name: filepath.Base(path), Body: file.Body, Range: hcl.Range{Filename: path, Start: hcl.InitialPos, End: hcl.InitialPos}}
	js, diags := p.DecodeConfig(resp.GetSchema())
	if diags.HasErrors() {
		return nil, &daemon.ConfigError{Text: config.Format(diags)}
	}
	// A plugin of another kind, or one that fails otherwise, is the
	// suite's to report.
	info, version, err := c.Identify(ctx, "", kind)
	if err != nil {
		return js, nil
	}
	var fe sdk.FieldErrors
	if err := c.Configure(ctx, js, version); errors.As(err, &fe) {
		p.Name = info.GetName()
		return nil, &daemon.ConfigError{Text: config.Format(p.FieldDiagnostics(fe))}
	}
	return js, nil
}

// pluginProcesses launches one plugin binary, again on demand, and kills
// the newest process as a crash would.
type pluginProcesses struct {
	opts     sdk.LaunchOptions
	launched []*sdk.Launched
}

// newPluginProcesses prepares to launch binary; with a config file, in the
// file's directory, so that relative paths in it mean what they would under
// the host.
func newPluginProcesses(binary, configPath string, log hclog.Logger) (*pluginProcesses, error) {
	opts := sdk.LaunchOptions{Path: binary, Logger: log}
	if configPath != "" {
		dir, err := filepath.Abs(filepath.Dir(configPath))
		if err != nil {
			return nil, err
		}
		opts.Dir = dir
	}
	// exec resolves a relative path against Dir; the user meant the
	// current directory. A bare name stays a $PATH lookup.
	if strings.ContainsRune(binary, filepath.Separator) {
		abs, err := filepath.Abs(binary)
		if err != nil {
			return nil, err
		}
		opts.Path = abs
	}
	return &pluginProcesses{opts: opts}, nil
}

func (p *pluginProcesses) launch() (*sdk.Launched, error) {
	l, err := sdk.Launch(p.opts)
	if err != nil {
		return nil, err
	}
	p.launched = append(p.launched, l)
	return l, nil
}

// kill SIGKILLs the newest process and waits until it is gone, so that a
// relaunch never overlaps it.
func (p *pluginProcesses) kill() error {
	l := p.launched[len(p.launched)-1]
	pid := l.Process.ReattachConfig().Pid
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("killing plugin process %d: %w", pid, err)
	}
	// go-plugin reaps the process and offers no channel to wait on.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(killWait)
	for !l.Exited() {
		select {
		case <-tick.C:
		case <-deadline:
			return fmt.Errorf("plugin process %d still there %s after SIGKILL", pid, killWait)
		}
	}
	return nil
}

// stop ends every process launched (those killed already are reaped).
func (p *pluginProcesses) stop() {
	for _, l := range p.launched {
		l.Kill()
	}
}

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return bench.Main(ctx, args, stdout, stderr)
}
