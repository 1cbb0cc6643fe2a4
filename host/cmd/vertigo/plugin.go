package main

import (
	"context"
	"fmt"
	"io"

	"github.com/vertigo-autoscaler/vertigo/host/bench"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	"github.com/vertigo-autoscaler/vertigo/sdk/conformance"
)

// cmdPlugin runs `plugin conformance KIND BINARY`: it launches the binary as
// the host would (AutoMTLS, gRPC only) and runs the SDK's suite; any failed
// spec makes the exit code non-zero.
func cmdPlugin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) != 3 || args[0] != "conformance" {
		return usageError{"plugin conformance KIND BINARY"}
	}
	kind, err := sdk.ParseKind(args[1])
	if err != nil {
		return usageError{err.Error()}
	}
	l, err := sdk.Launch(sdk.LaunchOptions{Path: args[2], Logger: logger(stderr).Named("plugin")})
	if err != nil {
		return err
	}
	defer l.Kill()
	res, err := conformance.Run(ctx, kind, l.Client, stdout)
	if err != nil {
		return err
	}
	if res.Failed > 0 {
		return fmt.Errorf("%s failed %d of %d conformance specs", args[2], res.Failed, res.Passed+res.Failed)
	}
	return nil
}

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return bench.Main(ctx, args, stdout, stderr)
}
