// Package bench implements `vertigo bench`: measurements of the host and its
// plugins, each printed next to a baseline taken in the same run, so that a
// figure never stands alone and none is ever typed by hand. Every benchmark
// prints its progress and ends with one `key=value ...` line for scripts.
package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
	"github.com/vertigo-autoscaler/vertigo/sdk/schema"
)

const usage = "usage: vertigo bench plugin-call [-n 5000] [-bin bin]\n" +
	"       vertigo bench placement [-nodes 1000] [-vms 20000] [-asks 20000] [-bin bin]\n" +
	"       vertigo bench idle [-vms 100] [-for 20s] [-bin bin]\n" +
	"       vertigo bench react [-runs 5] [-bin bin] [-guest build/guest]\n" +
	"       vertigo bench migrate [-mem 1GiB] [-runs 3] [-bin bin] [-guest build/guest]\n" +
	"       vertigo bench migrate-net [-runs 3] [-bin bin] [-guest build/guest]"

// Main runs `vertigo bench ARGS...`: args[0] is the benchmark name, the rest
// its flags. It prints progress and figures to stdout; the last line is
// always `key=value key=value ...`. Binaries are found via flag -bin DIR
// (default "bin"). Command-line mistakes are returned as *UsageError.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError("missing benchmark name")
	}
	run, ok := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"plugin-call": pluginCall,
		"placement":   placement,
		"idle":        idle,
		"react":       react,
		"migrate":     migrate,
		"migrate-net": migrateNet,
	}[args[0]]
	if !ok {
		return usageError(fmt.Sprintf("unknown benchmark %q", args[0]))
	}
	return run(ctx, args[1:], stdout, stderr)
}

// UsageError is a mistake on the command line, as opposed to a benchmark
// that failed; its text ends with the usage.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return "bench: " + e.Msg + "\n" + usage }

func usageError(msg string) error { return &UsageError{Msg: msg} }

// parseFlags parses args into fs, turning every flag mistake into an error
// that carries the usage rather than printing it.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return usageError("help requested")
		}
		return usageError(fmt.Sprintf("%s: %v", fs.Name(), err))
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0)))
	}
	return nil
}

// positive rejects a value below 1 for any of the named int flags of fs.
func positive(fs *flag.FlagSet, names ...string) error {
	for _, name := range names {
		if v := fs.Lookup(name).Value.(flag.Getter).Get().(int); v < 1 {
			return usageError(fmt.Sprintf("-%s: must be > 0, got %d", name, v))
		}
	}
	return nil
}

// figures is the last line of a benchmark, kept in the order it was built.
type figures []string

func (f *figures) add(key string, value float64, decimals int) {
	*f = append(*f, key+"="+strconv.FormatFloat(value, 'f', decimals, 64))
}

func (f *figures) addInt(key string, value int) {
	*f = append(*f, key+"="+strconv.Itoa(value))
}

func (f figures) String() string { return strings.Join(f, " ") }

// row prints one figure under a label, the labels of a benchmark aligned.
func row(w io.Writer, label, format string, args ...any) {
	fmt.Fprintf(w, "  %-40s %s\n", label+":", fmt.Sprintf(format, args...))
}

// micros is d in microseconds, the unit of per-call figures.
func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// perSecond is the throughput of n operations that took d.
func perSecond(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }

// launchConfigured starts the plugin binary bin/name as the host would,
// checks its kind, and configures it with its schema's defaults.
func launchConfigured(ctx context.Context, bin, name string, kind pb.Kind, stderr io.Writer) (*sdk.Launched, error) {
	path := filepath.Join(bin, name)
	p, err := sdk.Launch(sdk.LaunchOptions{
		Path:   path,
		Logger: hclog.New(&hclog.LoggerOptions{Name: name, Output: stderr, Level: hclog.Error}),
	})
	if err != nil {
		return nil, err
	}
	if err := configureDefaults(ctx, p.Client, kind); err != nil {
		p.Kill()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

func configureDefaults(ctx context.Context, c *sdk.Client, kind pb.Kind) error {
	_, version, err := c.Identify(ctx, "", kind)
	if err != nil {
		return err
	}
	resp, err := c.Base.ConfigSchema(ctx, &pb.ConfigSchemaRequest{})
	if err != nil {
		return fmt.Errorf("asking for the config schema: %w", err)
	}
	defaults, err := schema.Defaults(resp.GetSchema())
	if err != nil {
		return fmt.Errorf("the plugin's config schema has no usable defaults: %w", err)
	}
	return c.Configure(ctx, defaults, version)
}
