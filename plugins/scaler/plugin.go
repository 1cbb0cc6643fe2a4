package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vertigo-autoscaler/vertigo/plugins/scaler/policy"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

const (
	pluginName    = "vertigo-scaler"
	pluginVersion = "0.1.0"
)

// plugin serves the policy. Its only state is the configuration: per-VM
// memory travels in each decision's state bytes (states caches them, and
// decides nothing).
type plugin struct {
	pb.UnimplementedScalerServer

	mu         sync.RWMutex
	cfg        policy.Config
	configured bool

	states stateCache
}

// newPlugin starts on the defaults, so a restarted plugin decides safely
// before the host has re-sent its configuration.
func newPlugin() *plugin {
	return &plugin{cfg: policy.DefaultConfig()}
}

func (p *plugin) Info() sdk.Info {
	return sdk.Info{Name: pluginName, Kind: pb.Kind_KIND_SCALER, Version: pluginVersion, APIVersions: sdk.APIVersions}
}

func (p *plugin) ConfigSchema() *pb.ConfigSchema { return configSchema() }

func (p *plugin) SetConfig(_ context.Context, configJSON []byte, _ uint32) error {
	cfg, err := decodeConfig(configJSON)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cfg, p.configured = cfg, true
	return nil
}

func (p *plugin) Capabilities(context.Context) []string {
	return []string{"scaler.pressure_events", "scaler.cache_working_set", "scaler.mode.neon", "scaler.mode.percentile", "scaler.mode.peak"}
}

func (p *plugin) Health(context.Context) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if !p.configured {
		return errors.New("not configured")
	}
	return nil
}

func (p *plugin) config() policy.Config {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.cfg
}

// Decide decides for every VM of the request, in order. One malformed VM
// fails the call with InvalidArgument naming the field: a host that sends
// it has a bug that a partial answer would hide.
func (p *plugin) Decide(_ context.Context, req *pb.DecideRequest) (*pb.DecideResponse, error) {
	if req.GetNowUnixNano() <= 0 {
		return nil, status.Errorf(codes.InvalidArgument, "now_unix_nano: must be > 0, got %d", req.GetNowUnixNano())
	}
	cfg, now := p.config(), time.Unix(0, req.GetNowUnixNano())
	prev, next := p.states.snapshot(), make(map[string]cachedState, len(req.GetVms()))
	first := make(map[string]int, len(req.GetVms()))
	resp := &pb.DecideResponse{Decisions: make([]*pb.ScalerDecision, len(req.GetVms()))}
	for i, vm := range req.GetVms() {
		if j, dup := first[vm.GetVm()]; dup {
			return nil, status.Errorf(codes.InvalidArgument, "vms[%d].vm: %q is also vms[%d]", i, vm.GetVm(), j)
		}
		first[vm.GetVm()] = i
		in, err := inputFrom(vm, now)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "vms[%d].%v", i, err)
		}
		in.Brief = req.GetBrief()
		// Bad state must not wedge a VM: start afresh and say so.
		var note string
		cached, hit := lookup(prev, vm.GetVm(), vm.GetState())
		if hit {
			in.State = cached.state
		} else if in.State, err = policy.DecodeState(vm.GetState()); err != nil {
			note = fmt.Sprintf("previous state discarded (%v); ", err)
		}
		out := policy.Decide(cfg, in)
		// The policy never changes the state it is given, so a state equal
		// to the cached one (pointers included) has the cached encoding.
		state := cached.encoded
		if !hit || out.State != cached.state {
			state = out.State.Encode()
		}
		next[vm.GetVm()] = cachedState{encoded: state, state: out.State}
		resp.Decisions[i] = &pb.ScalerDecision{
			Vm:             vm.GetVm(),
			Goal:           &pb.Size{VcpuMilli: out.Goal.VCPUMilli, MemoryBytes: out.Goal.MemoryBytes},
			Reason:         note + out.Reason,
			State:          state,
			ForceDownscale: out.ForceDownscale,
		}
	}
	p.states.replace(next)
	return resp, nil
}
