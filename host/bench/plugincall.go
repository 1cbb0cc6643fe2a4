package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/vertigo-autoscaler/vertigo/host/model"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

const (
	scalerBinary = "vertigo-scaler"
	// warmupCalls are made and dropped before timing, on both sides of the
	// comparison, so neither pays for first-call costs (TLS, page faults,
	// lazily built tables) the other does not.
	warmupCalls = 200
	batchVMs    = 100
	// batchWarmup and minBatchCalls are in calls of batchVMs decisions each.
	batchWarmup   = 20
	minBatchCalls = 20
)

// benchEpoch is the decision time of every request: fixed, so that each run
// asks the plugin the very same question.
var benchEpoch = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

var (
	mib = uint64(1 << 20)
	gib = uint64(1 << 30)
	// defaultBounds are config.hcl's: 0.5..4 vCPU and 512MiB..4GiB in steps
	// of 250m and 256MiB.
	defaultBounds = model.Bounds{
		Min:  model.Size{VCPUMilli: 500, MemoryBytes: 512 * mib},
		Max:  model.Size{VCPUMilli: 4000, MemoryBytes: 4 * gib},
		Unit: model.Size{VCPUMilli: 250, MemoryBytes: 256 * mib},
	}
)

func pluginCall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plugin-call", flag.ContinueOnError)
	n := fs.Int("n", 5000, "timed Decide calls of one VM")
	bin := fs.String("bin", "bin", "directory holding "+scalerBinary)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := positive(fs, "n"); err != nil {
		return err
	}
	path := filepath.Join(*bin, scalerBinary)
	one, batch := decideRequest(1), decideRequest(batchVMs)
	batchCalls := max(*n/batchVMs, minBatchCalls)

	fmt.Fprintf(stdout, "plugin-call: %s, one VM with %d samples of metrics per Decide, %d warm-up calls\n",
		path, len(one.GetVms()[0].GetMetrics().GetTUnixNano()), warmupCalls)
	p, err := launchConfigured(ctx, *bin, scalerBinary, pb.Kind_KIND_SCALER, stderr)
	if err != nil {
		return err
	}
	defer p.Kill()
	rpc, err := timeDecide(ctx, p.Scaler, one, warmupCalls, *n)
	if err != nil {
		return err
	}
	row(stdout, "go-plugin (gRPC, AutoMTLS), 1 VM", "%v", rpc)
	batched, err := timeDecide(ctx, p.Scaler, batch, batchWarmup, batchCalls)
	if err != nil {
		return err
	}
	perDecision := batched.P50 / batchVMs
	row(stdout, fmt.Sprintf("go-plugin, %d VMs in one Decide", batchVMs), "%v = %v per decision", batched, round3(perDecision))

	inproc, err := selfBench(ctx, path, one, *n)
	if err != nil {
		return err
	}
	row(stdout, "baseline, in-process in the same binary", "%v", inproc)
	row(stdout, "go-plugin adds at p50", "%v per call (%.0fx the in-process call)",
		round3(rpc.P50-inproc.P50), float64(rpc.P50)/float64(max(inproc.P50, 1)))

	var f figures
	f.add("p50_us", micros(rpc.P50), 2)
	f.add("p99_us", micros(rpc.P99), 2)
	f.add("inproc_p50_us", micros(inproc.P50), 2)
	f.add("inproc_p99_us", micros(inproc.P99), 2)
	f.add("batch100_per_decision_us", micros(perDecision), 2)
	f.addInt("calls", *n)
	fmt.Fprintln(stdout, f)
	return nil
}

// timeDecide makes warmup untimed calls, then n timed ones. A plugin that
// answers for fewer VMs than asked would look fast, so that is an error.
func timeDecide(ctx context.Context, c pb.ScalerClient, req *pb.DecideRequest, warmup, n int) (latencies, error) {
	samples := make([]time.Duration, 0, n)
	for i := range warmup + n {
		start := time.Now()
		resp, err := c.Decide(ctx, req)
		took := time.Since(start)
		if err != nil {
			return latencies{}, fmt.Errorf("Decide call %d: %w", i, err)
		}
		if got, want := len(resp.GetDecisions()), len(req.GetVms()); got != want {
			return latencies{}, fmt.Errorf("Decide call %d: %d decisions for %d VMs", i, got, want)
		}
		if i >= warmup {
			samples = append(samples, took)
		}
	}
	return summarize(samples)
}

// selfBench times req in-process inside the plugin binary itself (see
// sdk.SelfBenchEnv), with the same warm-up as the go-plugin calls.
func selfBench(ctx context.Context, path string, req *pb.DecideRequest, n int) (latencies, error) {
	raw, err := proto.Marshal(req)
	if err != nil {
		return latencies{}, err
	}
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = append(os.Environ(), sdk.SelfBenchEnv+"="+strconv.Itoa(warmupCalls+n))
	cmd.Stdin = bytes.NewReader(raw)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return latencies{}, fmt.Errorf("%s with %s set: %w: %s", path, sdk.SelfBenchEnv, err, bytes.TrimSpace(errOut.Bytes()))
	}
	var result struct {
		NS []int64 `json:"ns"`
	}
	if err := json.Unmarshal(out.Bytes(), &result); err != nil {
		return latencies{}, fmt.Errorf("%s with %s set: reading its timings: %w", path, sdk.SelfBenchEnv, err)
	}
	if len(result.NS) != warmupCalls+n {
		return latencies{}, fmt.Errorf("%s with %s set: %d timings, want %d", path, sdk.SelfBenchEnv, len(result.NS), warmupCalls+n)
	}
	samples := make([]time.Duration, n)
	for i, ns := range result.NS[warmupCalls:] {
		samples[i] = time.Duration(ns)
	}
	return summarize(samples)
}

// decideRequest is a tick's request for vms Postgres VMs of the default
// bounds, each with a minute of samples every 5 s of a moderately busy
// guest: load near its vCPUs, memory about two thirds used, light pressure.
// The values come from a seeded generator, so every run sends the same.
func decideRequest(vms int) *pb.DecideRequest {
	const (
		samples = 12
		every   = 5 * time.Second
	)
	rng := rand.New(rand.NewPCG(1, uint64(vms)))
	req := &pb.DecideRequest{NowUnixNano: benchEpoch.UnixNano()}
	for v := range vms {
		current := model.Size{
			VCPUMilli:   defaultBounds.Min.VCPUMilli + defaultBounds.Unit.VCPUMilli*rng.Int64N(7),
			MemoryBytes: defaultBounds.Min.MemoryBytes + defaultBounds.Unit.MemoryBytes*rng.Uint64N(7),
		}
		w := &pb.MetricsWindow{}
		for i := samples - 1; i >= 0; i-- {
			vcpus := float64(current.VCPUMilli) / 1000
			used := current.MemoryBytes/2 + rng.Uint64N(current.MemoryBytes/4)
			w.TUnixNano = append(w.TUnixNano, benchEpoch.Add(-time.Duration(i)*every).UnixNano())
			w.Load1 = append(w.Load1, vcpus*(0.6+0.5*rng.Float64()))
			w.Load5 = append(w.Load5, vcpus*0.8)
			w.CpuPressureAvg10 = append(w.CpuPressureAvg10, 4*rng.Float64())
			w.MemoryPressureAvg10 = append(w.MemoryPressureAvg10, rng.Float64())
			w.MemoryUsedBytes = append(w.MemoryUsedBytes, used)
			w.MemoryCachedBytes = append(w.MemoryCachedBytes, (current.MemoryBytes-used)/2)
			w.OnlineVcpuMilli = append(w.OnlineVcpuMilli, current.VCPUMilli)
			w.OnlineMemoryBytes = append(w.OnlineMemoryBytes, current.MemoryBytes)
		}
		req.Vms = append(req.Vms, &pb.ScalerInput{
			Vm:      fmt.Sprintf("pg-%03d", v),
			Current: current.Proto(),
			Bounds:  defaultBounds.Proto(),
			Metrics: w,
		})
	}
	return req
}
