// Command vertigo-testplugin is a plugin that misbehaves on purpose, so the
// host's tests can prove that it refuses, clamps, restarts and keeps every
// VM. It is built only for tests and never named in a shipped config.
//
// Usage (as plugin args): vertigo-testplugin -kind scaler -mode MODE
//
//	ok             a scaler that keeps every VM at its current size
//	grow           a scaler that asks for one more unit of each dimension
//	crash-after=N  exits after N Decide calls (then behaves as ok when restarted
//	               with a fresh counter, so a restart is observable)
//	hang           Health and Decide block forever
//	liar           reports the name "impostor"
//	wrong-kind     reports kind placement while serving a scaler
//	old-api        speaks only API v0; new-api: only v99
//	out-of-bounds  aims far above every VM's max
//	malformed      returns decisions for unknown VMs, drops some, negative sizes
//	stdout         prints to stdout before serving (breaks the handshake)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
	"github.com/vertigo-autoscaler/vertigo/sdk/schema"
)

type plugin struct {
	pb.UnimplementedScalerServer
	name       string
	mode       string
	crashAfter int64
	calls      atomic.Int64
}

func main() {
	name := flag.String("name", "vertigo-testplugin", "name to report")
	mode := flag.String("mode", "ok", "how to misbehave")
	flag.Parse()
	p := &plugin{name: *name, mode: *mode}
	if n, ok := strings.CutPrefix(*mode, "crash-after="); ok {
		v, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad crash-after:", err)
			os.Exit(2)
		}
		p.mode, p.crashAfter = "crash-after", v
	}
	if p.mode == "stdout" {
		fmt.Println("hello from a plugin that should not print here")
	}
	sdk.Serve(p)
}

func (p *plugin) Info() sdk.Info {
	i := sdk.Info{Name: p.name, Kind: pb.Kind_KIND_SCALER, Version: "0.0.0-test", APIVersions: sdk.APIVersions}
	switch p.mode {
	case "liar":
		i.Name = "impostor"
	case "old-api":
		i.APIVersions = []uint32{0}
	case "new-api":
		i.APIVersions = []uint32{99}
	}
	return i
}

func (p *plugin) ConfigSchema() *pb.ConfigSchema {
	return schema.Of(schema.Number("step", 1, "units to grow by in grow mode"))
}

func (p *plugin) SetConfig(_ context.Context, configJSON []byte, _ uint32) error {
	var cfg struct {
		Step float64 `json:"step"`
	}
	if err := sdk.DecodeConfig(configJSON, &cfg); err != nil {
		return err
	}
	if cfg.Step < 0 {
		return sdk.FieldErrors{{Field: "step", Message: "must be >= 0"}}
	}
	sdk.Logger(p.name).Info("configured", "step", cfg.Step)
	return nil
}

func (p *plugin) Capabilities(context.Context) []string { return nil }

func (p *plugin) Health(ctx context.Context) error {
	if p.mode == "hang" {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (p *plugin) Decide(ctx context.Context, req *pb.DecideRequest) (*pb.DecideResponse, error) {
	n := p.calls.Add(1)
	switch p.mode {
	case "hang":
		<-ctx.Done()
		return nil, ctx.Err()
	case "crash-after":
		if n > p.crashAfter {
			os.Exit(3)
		}
	}
	resp := &pb.DecideResponse{}
	for _, vm := range req.GetVms() {
		goal := &pb.Size{VcpuMilli: vm.GetCurrent().GetVcpuMilli(), MemoryBytes: vm.GetCurrent().GetMemoryBytes()}
		switch p.mode {
		case "grow":
			goal.VcpuMilli += vm.GetBounds().GetUnit().GetVcpuMilli()
			goal.MemoryBytes += vm.GetBounds().GetUnit().GetMemoryBytes()
		case "out-of-bounds":
			goal.VcpuMilli = vm.GetBounds().GetMax().GetVcpuMilli() * 100
			goal.MemoryBytes = vm.GetBounds().GetMax().GetMemoryBytes() * 100
		case "malformed":
			resp.Decisions = append(resp.Decisions,
				&pb.ScalerDecision{Vm: "no-such-vm", Goal: goal, Reason: "made up"},
				&pb.ScalerDecision{Vm: vm.GetVm(), Goal: &pb.Size{VcpuMilli: -5}, Reason: "negative"})
			continue
		}
		resp.Decisions = append(resp.Decisions, &pb.ScalerDecision{Vm: vm.GetVm(), Goal: goal, Reason: "test plugin: " + p.mode})
	}
	return resp, nil
}
