package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/vertigo-autoscaler/vertigo/plugins/scaler/policy"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
	"github.com/vertigo-autoscaler/vertigo/sdk/sdktest"
)

const gib = 1 << 30

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// vmInput is a valid input: a minute of samples at load and used memory.
func vmInput(name string, load float64, used uint64) *pb.ScalerInput {
	m := &pb.MetricsWindow{}
	for i := range 12 {
		m.TUnixNano = append(m.TUnixNano, now.Add(time.Duration(i-11)*5*time.Second).UnixNano())
		m.Load1 = append(m.Load1, load)
		m.CpuPressureAvg10 = append(m.CpuPressureAvg10, 0)
		m.MemoryUsedBytes = append(m.MemoryUsedBytes, used)
	}
	return &pb.ScalerInput{
		Vm:      name,
		Current: &pb.Size{VcpuMilli: 1000, MemoryBytes: 4 * gib},
		Bounds: &pb.Bounds{
			Min:  &pb.Size{VcpuMilli: 250, MemoryBytes: 1 * gib},
			Max:  &pb.Size{VcpuMilli: 8000, MemoryBytes: 32 * gib},
			Unit: &pb.Size{VcpuMilli: 250, MemoryBytes: 1 * gib},
		},
		Metrics: m,
	}
}

func request(vms ...*pb.ScalerInput) *pb.DecideRequest {
	return &pb.DecideRequest{NowUnixNano: now.UnixNano(), Vms: vms}
}

func TestIdentityCapabilitiesAndHealth(t *testing.T) {
	ctx := context.Background()
	c := sdktest.Connect(t, newPlugin())
	info, version, err := c.Identify(ctx, "vertigo-scaler", pb.Kind_KIND_SCALER)
	require.NoError(t, err)
	require.Equal(t, "0.1.0", info.GetPluginVersion())
	require.Equal(t, uint32(1), version)

	caps, err := c.Capabilities(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string]bool{"scaler.pressure_events": true, "scaler.cache_working_set": true, "scaler.mode.neon": true, "scaler.mode.percentile": true, "scaler.mode.peak": true}, caps)

	require.ErrorContains(t, c.Healthy(ctx), "not configured")
	require.NoError(t, c.Configure(ctx, []byte(`{}`), version))
	require.NoError(t, c.Healthy(ctx))
}

func TestSchemaDefaultsAreThePolicyDefaults(t *testing.T) {
	cfg, err := decodeConfig(defaultsJSON)
	require.NoError(t, err)
	require.Equal(t, policy.DefaultConfig(), cfg)
	for _, a := range configSchema().GetAttributes() {
		require.NotEmpty(t, a.GetDefaultJson(), a.GetName())
		require.NotEmpty(t, a.GetDescription(), a.GetName())
	}
}

func TestSetConfigNamesTheFieldsItRejects(t *testing.T) {
	ctx := context.Background()
	c := sdktest.Connect(t, newPlugin())
	cases := []struct {
		json string
		want sdk.FieldErrors
	}{
		{`{"cpu_target_load": 0}`, sdk.FieldErrors{{Field: "cpu_target_load", Message: "must be in (0,1], got 0"}}},
		{`{"cpu_target_load": 1.5, "memory_target_usage": -1}`, sdk.FieldErrors{
			{Field: "cpu_target_load", Message: "must be in (0,1], got 1.5"},
			{Field: "memory_target_usage", Message: "must be in (0,1], got -1"},
		}},
		{`{"mode": "turbo"}`, sdk.FieldErrors{{Field: "mode", Message: `must be "default", "neon", "percentile" or "peak", got "turbo"`}}},
		{`{"downscale_margin": 1}`, sdk.FieldErrors{{Field: "downscale_margin", Message: "must be in [0,1), got 1"}}},
		{`{"cpu_pressure_threshold": 101}`, sdk.FieldErrors{{Field: "cpu_pressure_threshold", Message: "must be a percentage in [0,100], got 101"}}},
		{`{"max_downscale_step_units_cpu": 1.5}`, sdk.FieldErrors{{Field: "max_downscale_step_units_cpu", Message: "must be a whole number in [1,1e+06], got 1.5"}}},
		{`{"max_refusals": 0}`, sdk.FieldErrors{{Field: "max_refusals", Message: "must be a whole number in [1,4.294967295e+09], got 0"}}},
		{`{"downscale_stabilization": -1000000000}`, sdk.FieldErrors{{Field: "downscale_stabilization", Message: "must not be negative, got -1s"}}},
		{`{"refusal_backoff": 60000000000, "refusal_backoff_max": 30000000000}`, sdk.FieldErrors{{Field: "refusal_backoff_max", Message: "must be at least refusal_backoff (1m0s), got 30s"}}},
		{`{"neon_cu_vcpus": 0}`, sdk.FieldErrors{{Field: "neon_cu_vcpus", Message: "must be > 0, got 0"}}},
		{`{"cache_slope_cut": 0.5}`, sdk.FieldErrors{{Field: "cache_slope_cut", Message: "must be >= 1, got 0.5"}}},
		{`{"percentile_target": 0, "percentile_half_life": 0}`, sdk.FieldErrors{
			{Field: "percentile_target", Message: "must be in (0,1], got 0"},
			{Field: "percentile_half_life", Message: "must be > 0, got 0s"},
		}},
		{`{"cpu_target_load": "high"}`, sdk.FieldErrors{{Field: "cpu_target_load", Message: "want a float64, got a JSON string"}}},
	}
	for _, tc := range cases {
		err := c.Configure(ctx, []byte(tc.json), 1)
		var fe sdk.FieldErrors
		require.ErrorAs(t, err, &fe, tc.json)
		require.Equal(t, tc.want, fe, tc.json)
	}
	require.ErrorContains(t, c.Configure(ctx, []byte(`{"turbo": true}`), 1), `unknown field "turbo"`)
	require.ErrorContains(t, c.Configure(ctx, []byte(`{}`), 2), "api_version: 2 is not one plugin \"vertigo-scaler\" speaks")
	require.ErrorContains(t, c.Healthy(ctx), "not configured", "rejected configurations configure nothing")
}

func TestSetConfigIsIdempotentAndTakesEffect(t *testing.T) {
	ctx := context.Background()
	c := sdktest.Connect(t, newPlugin())
	req := request(vmInput("pg-1", 3.2, 1*gib))
	for range 2 {
		require.NoError(t, c.Configure(ctx, []byte(`{"mode": "neon"}`), 1))
		resp, err := c.Scaler.Decide(ctx, req)
		require.NoError(t, err)
		// Neon: 3.2/0.9 = 3.56 CU -> 3.75 CU of 1 vCPU + 4GiB.
		require.Equal(t, &pb.Size{VcpuMilli: 3750, MemoryBytes: 15 * gib}, resp.GetDecisions()[0].GetGoal())
	}
}

func TestDecideBeforeSetConfigUsesTheDefaults(t *testing.T) {
	resp, err := sdktest.Connect(t, newPlugin()).Scaler.Decide(context.Background(), request(vmInput("pg-1", 3.2, 1*gib)))
	require.NoError(t, err)
	// Default mode: 3.56 vCPU -> 3.75; memory (1GiB+100MiB)/0.75 -> 2GiB.
	require.Equal(t, &pb.Size{VcpuMilli: 3750, MemoryBytes: 4 * gib}, resp.GetDecisions()[0].GetGoal(), "memory shrinks only after stabilization")
	require.Contains(t, resp.GetDecisions()[0].GetReason(), "cpu: load1 3.20/0.90 -> 3.56 vCPU -> 3.75, up from 1")
}

func TestDecideRejectsMalformedInputNamingTheField(t *testing.T) {
	cases := []struct {
		edit func(*pb.DecideRequest)
		want string
	}{
		{func(r *pb.DecideRequest) { r.NowUnixNano = 0 }, "now_unix_nano: must be > 0, got 0"},
		{func(r *pb.DecideRequest) { r.Vms[1].Vm = "" }, "vms[1].vm: must not be empty"},
		{func(r *pb.DecideRequest) { r.Vms[2].Vm = "pg-0" }, `vms[2].vm: "pg-0" is also vms[0]`},
		{func(r *pb.DecideRequest) { r.Vms[2].Bounds.Unit.MemoryBytes = 0 }, "vms[2].bounds.unit.memory_bytes: must be > 0"},
		{func(r *pb.DecideRequest) { r.Vms[1].Bounds.Unit = nil }, "vms[1].bounds.unit.vcpu_milli: must be > 0"},
		{func(r *pb.DecideRequest) { r.Vms[0].Bounds = nil }, "vms[0].bounds: required"},
		{func(r *pb.DecideRequest) { r.Vms[0].Bounds.Max.MemoryBytes = 0 }, "vms[0].bounds.max.memory_bytes: must be > 0"},
		{func(r *pb.DecideRequest) { r.Vms[0].Bounds.Min.VcpuMilli = 9000 }, "vms[0].bounds.min.vcpu_milli: 9000 exceeds bounds.max.vcpu_milli 8000"},
		{func(r *pb.DecideRequest) { r.Vms[0].Current.VcpuMilli = -1 }, "vms[0].current.vcpu_milli: must be in [0, 2^53), got -1"},
		{func(r *pb.DecideRequest) { r.Vms[0].Current.MemoryBytes = 1 << 60 }, "vms[0].current.memory_bytes: must be below 2^53, got 1152921504606846976"},
		{func(r *pb.DecideRequest) {
			r.Vms[0].Metrics.Load1 = r.Vms[0].Metrics.Load1[:3]
			r.Vms[0].Metrics.TUnixNano = r.Vms[0].Metrics.TUnixNano[:4]
		},
			"vms[0].metrics: column load1 has 3 values, t_unix_nano has 4"},
		{func(r *pb.DecideRequest) { r.Vms[1].Metrics.Load5 = []float64{1} }, "vms[1].metrics: column load5 has 1 values, t_unix_nano has 12"},
		{func(r *pb.DecideRequest) { r.Vms[0].Metrics.TUnixNano[5] = r.Vms[0].Metrics.TUnixNano[4] },
			fmt.Sprintf("vms[0].metrics.t_unix_nano[5]: %d is not after the previous sample (oldest first)", now.Add(-35*time.Second).UnixNano())},
		{func(r *pb.DecideRequest) { r.Vms[0].Metrics.TUnixNano[0] = -5 }, "vms[0].metrics.t_unix_nano[0]: must be > 0, got -5"},
		{func(r *pb.DecideRequest) { r.Vms[0].Metrics.Load1[7] = -0.5 }, "vms[0].metrics.load1[7]: must be a finite number >= 0, got -0.5"},
		{func(r *pb.DecideRequest) { r.Vms[0].Metrics.CpuPressureAvg10[2] = 140 }, "vms[0].metrics.cpu_pressure_avg10[2]: must be within [0, 100], got 140"},
		{func(r *pb.DecideRequest) {
			r.Vms[1].Cache = &pb.CacheWorkingSet{WindowSeconds: []uint32{60, 120}, Bytes: []uint64{1}}
		}, "vms[1].cache: window_seconds has 2 values, bytes has 1"},
		{func(r *pb.DecideRequest) {
			r.Vms[1].Cache = &pb.CacheWorkingSet{WindowSeconds: []uint32{120, 60}, Bytes: []uint64{1, 2}}
		}, "vms[1].cache.window_seconds[1]: must be > 0 and longer than the previous window (shortest first), got 60"},
		{func(r *pb.DecideRequest) {
			r.Vms[2].Events = []*pb.GuestEvent{{Type: pb.GuestEventType_GUEST_EVENT_TYPE_AGENT_READY}, {Type: pb.GuestEventType_GUEST_EVENT_TYPE_CPU_PRESSURE}}
		}, "vms[2].events[1].t_unix_nano: must be > 0, got 0"},
		{func(r *pb.DecideRequest) { r.Vms[0].LastRefusalUnixNano = -1 }, "vms[0].last_refusal_unix_nano: must be >= 0, got -1"},
	}
	c := sdktest.Connect(t, newPlugin())
	for _, tc := range cases {
		req := request(vmInput("pg-0", 1, gib), vmInput("pg-1", 1, gib), vmInput("pg-2", 1, gib))
		tc.edit(req)
		_, err := c.Scaler.Decide(context.Background(), req)
		require.Equal(t, codes.InvalidArgument, status.Code(err), tc.want)
		require.Equal(t, tc.want, status.Convert(err).Message())
	}
}

func TestDecideOverGRPCMatchesThePolicy(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []policy.Mode{policy.ModeDefault, policy.ModeNeon, policy.ModePercentile, policy.ModePeak} {
		c := sdktest.Connect(t, newPlugin())
		require.NoError(t, c.Configure(ctx, fmt.Appendf(nil, `{"mode": %q}`, mode), 1))
		cfg := policy.DefaultConfig()
		cfg.Mode = mode

		prev := policy.State{CPU: policy.DimState{LowSince: now.Add(-time.Hour).UnixNano(), LowPeak: 1}}
		hot := vmInput("pg-hot", 2.5, 3*gib)
		hot.Metrics.CpuPressureAvg10[11] = 40
		hot.Events = []*pb.GuestEvent{{Type: pb.GuestEventType_GUEST_EVENT_TYPE_MEMORY_PRESSURE, TUnixNano: now.UnixNano(), MemoryUsedBytes: 3500 << 20}}
		cached := vmInput("pg-cache", 0.3, 1*gib)
		cached.Cache = &pb.CacheWorkingSet{WindowSeconds: []uint32{60, 120, 180}, Bytes: []uint64{2 * gib, 3 * gib, 3 * gib}}
		refused := vmInput("pg-refused", 0.1, 1*gib)
		refused.Current.VcpuMilli = 4000
		refused.State, refused.DownscaleRefusals, refused.LastRefusalUnixNano = prev.Encode(), 3, now.Add(-time.Hour).UnixNano()
		req := request(hot, cached, refused, vmInput("pg-idle", 0, 512<<20))

		resp, err := c.Scaler.Decide(ctx, req)
		require.NoError(t, err)
		require.Len(t, resp.GetDecisions(), len(req.GetVms()))
		for i, vm := range req.GetVms() {
			in, err := inputFrom(vm, now)
			require.NoError(t, err)
			in.State, err = policy.DecodeState(vm.GetState())
			require.NoError(t, err)
			want := policy.Decide(cfg, in)
			got := resp.GetDecisions()[i]
			require.Equal(t, vm.GetVm(), got.GetVm())
			require.Equal(t, want.Goal, policy.Size{VCPUMilli: got.GetGoal().GetVcpuMilli(), MemoryBytes: got.GetGoal().GetMemoryBytes()}, "%s %s", mode, vm.GetVm())
			require.Equal(t, want.Reason, got.GetReason())
			require.Equal(t, want.State.Encode(), got.GetState())
			require.Equal(t, want.ForceDownscale, got.GetForceDownscale())
		}
		if mode == policy.ModeDefault {
			require.True(t, resp.GetDecisions()[2].GetForceDownscale(), "three refusals force a step")
		}
	}
}

func TestUndecodableStateStartsAfresh(t *testing.T) {
	c := sdktest.Connect(t, newPlugin())
	clean := vmInput("pg-1", 3.2, gib)
	broken := vmInput("pg-2", 3.2, gib)
	broken.State = []byte("\x00not json")
	resp, err := c.Scaler.Decide(context.Background(), request(clean, broken))
	require.NoError(t, err)
	a, b := resp.GetDecisions()[0], resp.GetDecisions()[1]
	require.Equal(t, a.GetGoal(), b.GetGoal())
	require.Equal(t, a.GetState(), b.GetState())
	require.True(t, strings.HasPrefix(b.GetReason(), "previous state discarded (decoding scaler state: "), b.GetReason())
	require.True(t, strings.HasSuffix(b.GetReason(), "); "+a.GetReason()), b.GetReason())
}

// The plugin caches the state it returned; a host that hands it back, or
// hands back other bytes (an older state, another plugin's, a VM skipped for
// a while), gets what a freshly started plugin would answer.
func TestStateCacheDecidesAsAFreshPlugin(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []policy.Mode{policy.ModeDefault, policy.ModeNeon, policy.ModePercentile, policy.ModePeak} {
		config := fmt.Appendf(nil, `{"mode": %q}`, mode)
		long := newPlugin()
		require.NoError(t, long.SetConfig(ctx, config, 1))
		states := map[string][][]byte{}
		for tick := range 40 {
			req := &pb.DecideRequest{NowUnixNano: now.Add(time.Duration(tick) * time.Minute).UnixNano()}
			for v := range 3 {
				name := fmt.Sprintf("pg-%d", v)
				if v == 2 && tick%7 == 3 {
					continue // not asked about this tick
				}
				vm := vmInput(name, float64((tick*(v+1))%9)/2, uint64(1+(tick+v)%5)*gib)
				for i := range vm.Metrics.TUnixNano {
					vm.Metrics.TUnixNano[i] += int64(tick) * int64(time.Minute)
				}
				if h := states[name]; len(h) > 0 {
					vm.State = h[len(h)-1]
					if v == 1 && tick%5 == 0 {
						vm.State = h[len(h)/2] // an older state
					}
				}
				req.Vms = append(req.Vms, vm)
			}
			fresh := newPlugin()
			require.NoError(t, fresh.SetConfig(ctx, config, 1))
			want, err := fresh.Decide(ctx, req)
			require.NoError(t, err)
			got, err := long.Decide(ctx, req)
			require.NoError(t, err)
			require.Equal(t, want.String(), got.String(), "%s, tick %d", mode, tick)
			for _, d := range got.GetDecisions() {
				states[d.GetVm()] = append(states[d.GetVm()], d.GetState())
			}
		}
	}
}

func TestThousandVMsInOneCall(t *testing.T) {
	req := request()
	for i := range 1000 {
		req.Vms = append(req.Vms, vmInput(fmt.Sprintf("pg-%04d", i), float64(i%80)/10, uint64(i%24)*gib))
	}
	resp, err := sdktest.Connect(t, newPlugin()).Scaler.Decide(context.Background(), req)
	require.NoError(t, err)
	require.Len(t, resp.GetDecisions(), 1000)
	for i, d := range resp.GetDecisions() {
		require.Equal(t, fmt.Sprintf("pg-%04d", i), d.GetVm())
		g := d.GetGoal()
		require.True(t, g.GetVcpuMilli() >= 250 && g.GetVcpuMilli() <= 8000 && g.GetVcpuMilli()%250 == 0, "vm %d: %v", i, g)
		require.True(t, g.GetMemoryBytes() >= gib && g.GetMemoryBytes() <= 32*gib && g.GetMemoryBytes()%gib == 0, "vm %d: %v", i, g)
		require.NotEmpty(t, d.GetReason())
	}
}

// BenchmarkDecide measures a tick of 100 VMs through the plugin in-process
// (conversion, validation and policy; no gRPC).
func BenchmarkDecide(b *testing.B) {
	p := newPlugin()
	req := request()
	for i := range 100 {
		req.Vms = append(req.Vms, vmInput(fmt.Sprintf("pg-%03d", i), float64(i%40)/10, uint64(i%16)*gib))
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Decide(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

func TestReadmeDocumentsEveryAttribute(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	for _, a := range configSchema().GetAttributes() {
		require.Contains(t, string(readme), "| `"+a.GetName()+"` |", "README.md has no row for %s", a.GetName())
	}
}

// A brief request gets the same decisions without their reasons.
func TestBriefRequestGetsNoReasons(t *testing.T) {
	ctx := context.Background()
	full, err := sdktest.Connect(t, newPlugin()).Scaler.Decide(ctx, request(vmInput("pg-1", 3.2, gib), vmInput("pg-2", 0.1, 3*gib)))
	require.NoError(t, err)
	req := request(vmInput("pg-1", 3.2, gib), vmInput("pg-2", 0.1, 3*gib))
	req.Brief = true
	brief, err := sdktest.Connect(t, newPlugin()).Scaler.Decide(ctx, req)
	require.NoError(t, err)
	require.Len(t, brief.GetDecisions(), 2)
	for i, d := range brief.GetDecisions() {
		require.Empty(t, d.GetReason())
		require.NotEmpty(t, full.GetDecisions()[i].GetReason())
		d.Reason = full.GetDecisions()[i].GetReason()
		require.True(t, proto.Equal(full.GetDecisions()[i], d), "%v\n%v", full.GetDecisions()[i], d)
	}
}
