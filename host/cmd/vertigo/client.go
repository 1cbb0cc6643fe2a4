package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/vertigo-autoscaler/vertigo/host/api"
	"github.com/vertigo-autoscaler/vertigo/host/config"
)

// apiClient finds the host's API from the config file (address and token
// file), so operators never copy a token around by hand.
func apiClient(fs *flag.FlagSet, args []string) (*api.Client, *flag.FlagSet, error) {
	path := fs.String("config", "config.hcl", "configuration file of the running host")
	addr := fs.String("addr", "", "API address (overrides the config file's)")
	if err := fs.Parse(args); err != nil {
		return nil, nil, usageError{err.Error()}
	}
	cfg, diags := config.Load(*path)
	var err error
	if diags.HasErrors() {
		return nil, nil, fmt.Errorf("reading %s to find the API: %s", *path, config.Format(diags))
	}
	c := &api.Client{Addr: cfg.API.Address, HTTP: &http.Client{Timeout: 10 * time.Second}}
	if strings.HasSuffix(c.Addr, ":0") {
		// The host chose the port; it recorded it in its state directory.
		if c.Addr, err = api.ReadAddress(api.AddressPath(cfg.StateDir)); err != nil {
			return nil, nil, fmt.Errorf("the API's port is chosen by the host, which has not recorded it (is it running?): %w", err)
		}
	}
	if *addr != "" {
		c.Addr = *addr
	}
	if b, err := os.ReadFile(cfg.API.TokenFile); err == nil {
		c.Token = strings.TrimSpace(string(b))
	}
	return c, fs, nil
}

func cmdStatus(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	watch := fs.Bool("watch", false, "redraw every second until interrupted")
	c, _, err := apiClient(fs, args)
	if err != nil {
		return err
	}
	for {
		st, err := c.Status(ctx)
		if err != nil {
			return fmt.Errorf("asking the host at %s: %w", c.Addr, err)
		}
		if *watch {
			fmt.Fprint(stdout, "\033[H\033[2J")
		}
		api.RenderStatus(stdout, st, time.Now())
		if !*watch {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func cmdTick(ctx context.Context, args []string, stdout io.Writer) error {
	c, _, err := apiClient(flag.NewFlagSet("tick", flag.ContinueOnError), args)
	if err != nil {
		return err
	}
	if err := c.Tick(ctx); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}
