package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/vertigo-autoscaler/vertigo/host/api"
	"github.com/vertigo-autoscaler/vertigo/sdk/schema"
)

// cmdVM runs `vm load NAME ...` and `vm migrate NAME --to NODE`. The VM's
// name comes first, its flags after, as operators type them.
func cmdVM(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) < 2 || strings.HasPrefix(args[1], "-") {
		return usageError{"vm load NAME [--cpu N] [--mem SIZE] [--for DURATION] | vm migrate NAME --to NODE"}
	}
	verb, name, rest := args[0], args[1], args[2:]
	switch verb {
	case "load":
		fs := flag.NewFlagSet("vm load", flag.ContinueOnError)
		cpu := fs.Uint("cpu", 1, "busy CPU workers in the guest")
		mem := fs.String("mem", "0", "memory to allocate and touch in the guest (e.g. 512MiB)")
		dur := fs.Duration("for", time.Minute, "how long the load lasts")
		c, _, err := apiClient(fs, rest)
		if err != nil {
			return err
		}
		bytes, err := schema.ParseBytes(*mem)
		if err != nil {
			return usageError{"--mem: " + err.Error()}
		}
		if err := c.LoadVM(ctx, name, api.LoadRequest{CPUWorkers: uint32(*cpu), MemoryBytes: bytes, DurationNs: int64(*dur)}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %d CPU workers and %s of memory for %s; watch with `vertigo status -watch`\n", name, *cpu, *mem, *dur)
		return nil
	case "migrate":
		fs := flag.NewFlagSet("vm migrate", flag.ContinueOnError)
		to := fs.String("to", "", "target node")
		c, _, err := apiClient(fs, rest)
		if err != nil {
			return err
		}
		if *to == "" {
			return usageError{"vm migrate NAME --to NODE"}
		}
		// A migration takes as long as it takes; Ctrl-C (ctx) ends the wait.
		c.HTTP = &http.Client{}
		start := time.Now()
		var last api.Migration
		err = c.MigrateVM(ctx, name, *to, func(m api.Migration) {
			last = m
			fmt.Fprintf(stdout, "\r%s %s -> %s %s %s\033[K", name, m.From, m.To, progressBar(m, 30), api.ProgressText(m))
		})
		fmt.Fprintln(stdout)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s now runs on %s: %s total, downtime %s\n", name, last.To,
			time.Since(start).Round(time.Millisecond), time.Duration(last.DowntimeNanos).Round(time.Millisecond))
		return nil
	}
	return usageError{fmt.Sprintf("unknown vm command %q", verb)}
}

// progressBar draws [=====>    ] from the bytes moved so far.
func progressBar(m api.Migration, width int) string {
	total := m.TransferredBytes + m.RemainingBytes
	done := width
	if m.State != "completed" && total > 0 {
		done = int(uint64(width) * m.TransferredBytes / total)
	}
	if m.State != "completed" && total == 0 {
		done = 0
	}
	return "[" + strings.Repeat("=", done) + strings.Repeat(" ", width-done) + "]"
}
