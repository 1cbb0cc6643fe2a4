package main

import (
	"context"
	"errors"
	"io"

	"github.com/vertigo-autoscaler/vertigo/host/simulate"
)

// cmdSimulate runs `vertigo simulate`: a trace replayed through the real
// scaler and placement plugins, one run per policy.
func cmdSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := simulate.Main(ctx, args, stdout, stderr)
	if ue := (*simulate.UsageError)(nil); errors.As(err, &ue) {
		return usageError{ue.Error() + " (see vertigo simulate --help)"}
	}
	return err
}
