package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vertigo-autoscaler/vertigo/plugins/placement/fleet"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

const (
	pluginName    = "vertigo-placement"
	pluginVersion = "0.1.0"
)

var capabilities = []string{"placement.partial_grants", "placement.migration_plans", "placement.dirty_rate"}

// plugin serves the placement policy over a fleet the host feeds it as
// events. The host may call it concurrently: one lock guards the fleet and
// the policy, and every call sees and leaves a consistent fleet.
type plugin struct {
	pb.UnimplementedPlacementServer
	log hclog.Logger

	mu     sync.RWMutex
	fleet  *fleet.Fleet
	policy fleet.Policy

	// stuck is each node's last logged shortfall: a plan comes every few
	// seconds, and a node that stays stuck is said once, not every time.
	stuckMu sync.Mutex
	stuck   map[string]string
}

func newPlugin(log hclog.Logger) *plugin {
	policy, err := parseConfig(nil)
	if err != nil {
		panic("placement config defaults are invalid: " + err.Error())
	}
	return &plugin{log: log, fleet: fleet.New(), policy: policy, stuck: map[string]string{}}
}

func (p *plugin) Info() sdk.Info {
	return sdk.Info{Name: pluginName, Kind: pb.Kind_KIND_PLACEMENT, Version: pluginVersion, APIVersions: sdk.APIVersions}
}

func (p *plugin) ConfigSchema() *pb.ConfigSchema { return configSchema() }

// SetConfig replaces the policy as a whole, or not at all. The fleet is
// kept: a new policy applies to the next decision.
func (p *plugin) SetConfig(_ context.Context, configJSON []byte, _ uint32) error {
	policy, err := parseConfig(configJSON)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.policy = policy
	return nil
}

func (p *plugin) Capabilities(context.Context) []string { return slices.Clone(capabilities) }

func (p *plugin) Health(context.Context) error { return nil }

// Reset forgets the fleet; the host replays it next.
func (p *plugin) Reset(context.Context, *pb.ResetRequest) (*pb.ResetResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fleet = fleet.New()
	return &pb.ResetResponse{}, nil
}

// Apply applies each event in order. A refused or malformed event is
// reported by index and the others still apply: one bad event must not
// stop a replay of the whole fleet.
func (p *plugin) Apply(_ context.Context, req *pb.ApplyRequest) (*pb.ApplyResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	resp := &pb.ApplyResponse{}
	for i, ev := range req.GetEvents() {
		if err := p.apply(ev); err != nil {
			msg := err.Error()
			if inv, ok := errors.AsType[*fleet.InvalidError](err); ok {
				msg = inv.In(fmt.Sprintf("events[%d]", i)).Error()
			}
			resp.Errors = append(resp.Errors, &pb.EventError{Index: uint32(i), Message: msg})
		}
	}
	return resp, nil
}

// apply applies one event; a malformed one's field is named from the event.
func (p *plugin) apply(ev *pb.PlacementEvent) error {
	var err error
	var kind string
	switch e := ev.GetEvent().(type) {
	case *pb.PlacementEvent_NodeUpsert:
		kind, err = "node_upsert", p.fleet.UpsertNode(nodeSpecFrom(e.NodeUpsert))
	case *pb.PlacementEvent_NodeRemove:
		kind, err = "node_remove", p.fleet.RemoveNode(e.NodeRemove)
	case *pb.PlacementEvent_VmUpsert:
		kind, err = "vm_upsert", p.fleet.UpsertVM(vmFrom(e.VmUpsert))
	case *pb.PlacementEvent_VmRemove:
		kind, err = "vm_remove", p.fleet.RemoveVM(e.VmRemove)
	default:
		return &fleet.InvalidError{Message: "empty event: set one of node_upsert, node_remove, vm_upsert, vm_remove"}
	}
	if inv, ok := errors.AsType[*fleet.InvalidError](err); ok {
		return inv.In(kind)
	}
	return err
}

func (p *plugin) Grow(_ context.Context, req *pb.GrowRequest) (*pb.GrowResponse, error) {
	asks := make([]fleet.Ask, len(req.GetAsks()))
	for i, a := range req.GetAsks() {
		asks[i] = fleet.Ask{VM: a.GetVm(), Want: sizeFrom(a.GetWant())}
	}
	p.mu.Lock()
	grants, err := p.fleet.Grow(asks)
	p.mu.Unlock()
	if err != nil {
		// Grow fails only on a malformed ask, before granting anything.
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	resp := &pb.GrowResponse{Grants: make([]*pb.Grant, len(grants))}
	for i, g := range grants {
		resp.Grants[i] = &pb.Grant{Vm: g.VM, Granted: sizeProto(g.Granted), Partial: g.Partial, Reason: g.Reason}
	}
	return resp, nil
}

func (p *plugin) Place(_ context.Context, req *pb.PlaceRequest) (*pb.PlaceResponse, error) {
	p.mu.Lock()
	placed, err := p.fleet.Place(req.GetVm(), sizeFrom(req.GetSize()), sizeFrom(req.GetUnit()), p.policy.Strategy)
	p.mu.Unlock()
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &pb.PlaceResponse{Node: placed.Node, Score: placed.Score, Reason: placed.Reason}, nil
}

func (p *plugin) PlanMigrations(context.Context, *pb.PlanMigrationsRequest) (*pb.PlanMigrationsResponse, error) {
	p.mu.RLock()
	plan := p.fleet.PlanMigrations(p.policy)
	p.mu.RUnlock()
	p.logShortfalls(plan.Shortfalls)
	return &pb.PlanMigrationsResponse{Migrations: migrationsProto(plan.Migrations)}, nil
}

// logShortfalls says when a node becomes stuck above its watermark, when
// the reason changes, and when it is no longer stuck.
func (p *plugin) logShortfalls(shortfalls []fleet.Shortfall) {
	p.stuckMu.Lock()
	defer p.stuckMu.Unlock()
	now := map[string]string{}
	for _, s := range shortfalls {
		now[s.Node] = s.Reason
		if p.stuck[s.Node] != s.Reason {
			p.log.Warn("node stays above its watermark after the planned migrations", "node", s.Node, "reason", s.Reason)
		}
	}
	for node := range p.stuck {
		if _, ok := now[node]; !ok {
			p.log.Info("node no longer stuck above its watermark", "node", node)
		}
	}
	p.stuck = now
}

func (p *plugin) Snapshot(context.Context, *pb.SnapshotRequest) (*pb.SnapshotResponse, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return snapshotProto(p.fleet.Snapshot()), nil
}
