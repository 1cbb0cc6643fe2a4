package conformance

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
	"github.com/vertigo-autoscaler/vertigo/sdk/schema"
)

// The reference plugins are the smallest honest implementations of their
// kinds: enough to show the suites pass against a correct plugin, and a
// base for the broken variants that must fail them.

// refScaler aims at load1/target_load vCPUs and used/target_memory memory
// (or the cache working set, or one unit more under memory pressure),
// rounded up to units and clamped to the bounds. It shrinks only after the
// goal has stayed below the current size for scale_down_after, remembered
// in the state the host carries.
type refScaler struct {
	pb.UnimplementedScalerServer
	caps []string

	mu  sync.Mutex
	cfg *scalerConfig // nil until configured
}

type scalerConfig struct {
	TargetLoad     float64 `json:"target_load"`
	TargetMemory   float64 `json:"target_memory"`
	ScaleDownAfter int64   `json:"scale_down_after"`
}

func newRefScaler() *refScaler {
	return &refScaler{caps: []string{capPressureEvents, capCacheWorkingSet}}
}

func (r *refScaler) Info() sdk.Info {
	return sdk.Info{Name: "reference-scaler", Kind: pb.Kind_KIND_SCALER, Version: "0.1.0", APIVersions: sdk.APIVersions}
}

func (r *refScaler) ConfigSchema() *pb.ConfigSchema {
	return schema.Of(
		schema.Number("target_load", 0.9, "load1 per vCPU to aim at"),
		schema.Number("target_memory", 0.75, "fraction of memory to aim to use"),
		schema.Duration("scale_down_after", 5*time.Minute, "how long a smaller goal must hold before shrinking"),
	)
}

func (r *refScaler) SetConfig(_ context.Context, configJSON []byte, _ uint32) error {
	var cfg scalerConfig
	if err := sdk.DecodeConfig(configJSON, &cfg); err != nil {
		return err
	}
	return r.configure(cfg)
}

func (r *refScaler) configure(cfg scalerConfig) error {
	var errs sdk.FieldErrors
	if cfg.TargetLoad <= 0 || cfg.TargetLoad > 1 {
		errs = append(errs, sdk.FieldError{Field: "target_load", Message: "must be in (0, 1]"})
	}
	if cfg.TargetMemory <= 0 || cfg.TargetMemory > 1 {
		errs = append(errs, sdk.FieldError{Field: "target_memory", Message: "must be in (0, 1]"})
	}
	if len(errs) > 0 {
		return errs
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cfg = &cfg
	return nil
}

func (r *refScaler) Capabilities(context.Context) []string { return r.caps }

func (r *refScaler) Health(context.Context) error {
	if r.config() == nil {
		return errors.New("not configured")
	}
	return nil
}

func (r *refScaler) config() *scalerConfig {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfg
}

func (r *refScaler) Decide(_ context.Context, req *pb.DecideRequest) (*pb.DecideResponse, error) {
	cfg := r.config()
	if cfg == nil {
		return nil, status.Error(codes.FailedPrecondition, "not configured")
	}
	resp := &pb.DecideResponse{}
	for i, in := range req.GetVms() {
		if err := validateInput(in); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "vms[%d].%v", i, err)
		}
		resp.Decisions = append(resp.Decisions, cfg.decide(time.Unix(0, req.GetNowUnixNano()), in))
	}
	return resp, nil
}

func validateInput(in *pb.ScalerInput) error {
	b := in.GetBounds()
	switch {
	case b.GetUnit().GetVcpuMilli() <= 0:
		return errors.New("bounds.unit.vcpu_milli: must be > 0")
	case b.GetUnit().GetMemoryBytes() == 0:
		return errors.New("bounds.unit.memory_bytes: must be > 0")
	case !fits(b.GetMin(), b.GetMax()):
		return errors.New("bounds.min: must not exceed bounds.max")
	}
	return nil
}

func (c *scalerConfig) decide(now time.Time, in *pb.ScalerInput) *pb.ScalerDecision {
	cur, b := in.GetCurrent(), in.GetBounds()
	goal, reason := c.need(in)
	goal = clampSize(size(
		roundUp(goal.GetVcpuMilli(), b.GetUnit().GetVcpuMilli()),
		roundUp(goal.GetMemoryBytes(), b.GetUnit().GetMemoryBytes()),
	), b)
	if fits(cur, goal) {
		return &pb.ScalerDecision{Vm: in.GetVm(), Goal: goal, Reason: reason}
	}
	below := now
	if len(in.GetState()) == 8 {
		below = time.Unix(0, int64(binary.BigEndian.Uint64(in.GetState())))
	}
	state := binary.BigEndian.AppendUint64(nil, uint64(below.UnixNano()))
	if held := now.Sub(below); held < time.Duration(c.ScaleDownAfter) {
		hold := clampSize(size(max(goal.GetVcpuMilli(), cur.GetVcpuMilli()), max(goal.GetMemoryBytes(), cur.GetMemoryBytes())), b)
		return &pb.ScalerDecision{Vm: in.GetVm(), Goal: hold, State: state,
			Reason: fmt.Sprintf("%s; shrinking held for %s of %s", reason, held, time.Duration(c.ScaleDownAfter))}
	}
	return &pb.ScalerDecision{Vm: in.GetVm(), Goal: goal, State: state, Reason: reason}
}

// need is the size the latest sample asks for, before rounding.
func (c *scalerConfig) need(in *pb.ScalerInput) (*pb.Size, string) {
	m, cur := in.GetMetrics(), in.GetCurrent()
	if len(m.GetLoad1()) == 0 || len(m.GetMemoryUsedBytes()) == 0 {
		return cur, "no metrics yet: keep the current size"
	}
	load, used := m.GetLoad1()[len(m.GetLoad1())-1], m.GetMemoryUsedBytes()[len(m.GetMemoryUsedBytes())-1]
	vcpu := int64(math.Ceil(load / c.TargetLoad * 1000))
	memory := uint64(math.Ceil(float64(used) / c.TargetMemory))
	reason := fmt.Sprintf("load1 %.2f, %s used", load, formatBytes(used))
	if ws := slices.Max(append([]uint64{0}, in.GetCache().GetBytes()...)); ws > 0 {
		memory = max(memory, uint64(math.Ceil(float64(ws)/c.TargetMemory)))
		reason += fmt.Sprintf(", cache working set %s", formatBytes(ws))
	}
	for _, e := range in.GetEvents() {
		if e.GetType() == pb.GuestEventType_GUEST_EVENT_TYPE_MEMORY_PRESSURE {
			memory = max(memory, cur.GetMemoryBytes()+in.GetBounds().GetUnit().GetMemoryBytes())
			reason += ", memory pressure"
		}
	}
	return size(vcpu, memory), reason
}

func roundUp[T int64 | uint64](v, unit T) T {
	return (v + unit - 1) / unit * unit
}

func clampSize(s *pb.Size, b *pb.Bounds) *pb.Size {
	return size(
		min(max(s.GetVcpuMilli(), b.GetMin().GetVcpuMilli()), b.GetMax().GetVcpuMilli()),
		min(max(s.GetMemoryBytes(), b.GetMin().GetMemoryBytes()), b.GetMax().GetMemoryBytes()),
	)
}

// refPlacement keeps the fleet's accounts in memory. It grants growth in
// units up to what fits (or all or nothing without partial grants), places
// a VM on the node with the most room left (or the least, to pack), and
// plans moves off a node above its watermark, cheapest to move first, onto
// nodes that stay under theirs.
type refPlacement struct {
	pb.UnimplementedPlacementServer
	caps []string

	mu    sync.Mutex
	pack  bool
	nodes map[string]*pb.NodeSpec
	vms   map[string]*pb.VMPlacement
}

func newRefPlacement() *refPlacement {
	return &refPlacement{
		caps:  []string{capPartialGrants, capMigrationPlans},
		nodes: map[string]*pb.NodeSpec{},
		vms:   map[string]*pb.VMPlacement{},
	}
}

func (p *refPlacement) Info() sdk.Info {
	return sdk.Info{Name: "reference-placement", Kind: pb.Kind_KIND_PLACEMENT, Version: "0.1.0", APIVersions: sdk.APIVersions}
}

func (p *refPlacement) ConfigSchema() *pb.ConfigSchema {
	return schema.Of(schema.String("strategy", "spread", "where new VMs go", "spread", "pack"))
}

func (p *refPlacement) SetConfig(_ context.Context, configJSON []byte, _ uint32) error {
	var cfg struct {
		Strategy string `json:"strategy"`
	}
	if err := sdk.DecodeConfig(configJSON, &cfg); err != nil {
		return err
	}
	if cfg.Strategy != "spread" && cfg.Strategy != "pack" {
		return sdk.FieldErrors{{Field: "strategy", Message: `must be "spread" or "pack"`}}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pack = cfg.Strategy == "pack"
	return nil
}

func (p *refPlacement) Capabilities(context.Context) []string { return p.caps }

func (p *refPlacement) Health(context.Context) error { return nil }

func (p *refPlacement) Reset(context.Context, *pb.ResetRequest) (*pb.ResetResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.nodes)
	clear(p.vms)
	return &pb.ResetResponse{}, nil
}

func (p *refPlacement) Apply(_ context.Context, req *pb.ApplyRequest) (*pb.ApplyResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	resp := &pb.ApplyResponse{}
	for i, ev := range req.GetEvents() {
		if err := p.apply(ev); err != nil {
			resp.Errors = append(resp.Errors, &pb.EventError{Index: uint32(i), Message: err.Error()})
		}
	}
	return resp, nil
}

func (p *refPlacement) apply(ev *pb.PlacementEvent) error {
	switch e := ev.GetEvent().(type) {
	case *pb.PlacementEvent_NodeUpsert:
		n := e.NodeUpsert
		switch {
		case n.GetName() == "":
			return errors.New("node_upsert.name: empty")
		case n.GetCapacity().GetVcpuMilli() <= 0 || n.GetCapacity().GetMemoryBytes() == 0:
			return errors.New("node_upsert.capacity: must be > 0")
		case n.GetWatermark() <= 0 || n.GetWatermark() > 1:
			return errors.New("node_upsert.watermark: must be in (0, 1]")
		case !fits(p.reserved(n.GetName(), ""), n.GetCapacity()):
			return fmt.Errorf("node_upsert.capacity: below what node %s already reserves", n.GetName())
		}
		p.nodes[n.GetName()] = proto.Clone(n).(*pb.NodeSpec)
	case *pb.PlacementEvent_NodeRemove:
		if !sameSize(p.reserved(e.NodeRemove, ""), nil) {
			return fmt.Errorf("node_remove: node %s still has VMs", e.NodeRemove)
		}
		delete(p.nodes, e.NodeRemove)
	case *pb.PlacementEvent_VmUpsert:
		v := e.VmUpsert
		n := p.nodes[v.GetNode()]
		switch {
		case n == nil:
			return fmt.Errorf("vm_upsert.node: unknown node %q", v.GetNode())
		case v.GetUnit().GetVcpuMilli() <= 0 || v.GetUnit().GetMemoryBytes() == 0:
			return errors.New("vm_upsert.unit: must be > 0")
		case !fits(add(p.reserved(n.GetName(), v.GetVm()), v.GetReserved()), n.GetCapacity()):
			return fmt.Errorf("vm_upsert: vm %s would overcommit node %s", v.GetVm(), n.GetName())
		}
		p.vms[v.GetVm()] = proto.Clone(v).(*pb.VMPlacement)
	case *pb.PlacementEvent_VmRemove:
		delete(p.vms, e.VmRemove)
	default:
		return errors.New("empty event")
	}
	return nil
}

// reserved is what node's VMs reserve, leaving out the VM named except.
func (p *refPlacement) reserved(node, except string) *pb.Size {
	sum := size(0, 0)
	for _, v := range p.vms {
		if v.GetNode() == node && v.GetVm() != except {
			sum = add(sum, v.GetReserved())
		}
	}
	return sum
}

func (p *refPlacement) Grow(_ context.Context, req *pb.GrowRequest) (*pb.GrowResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	resp := &pb.GrowResponse{}
	for _, a := range req.GetAsks() {
		v := p.vms[a.GetVm()]
		if v == nil {
			return nil, status.Errorf(codes.NotFound, "asks: unknown vm %q", a.GetVm())
		}
		free := sub(p.nodes[v.GetNode()].GetCapacity(), p.reserved(v.GetNode(), ""))
		old, want, u := v.GetReserved(), a.GetWant(), v.GetUnit()
		granted := size(
			growDimension(old.GetVcpuMilli(), want.GetVcpuMilli(), free.GetVcpuMilli(), u.GetVcpuMilli()),
			growDimension(old.GetMemoryBytes(), want.GetMemoryBytes(), free.GetMemoryBytes(), u.GetMemoryBytes()),
		)
		if !slices.Contains(p.caps, capPartialGrants) && !sameSize(granted, want) {
			granted = old
		}
		v.Reserved = granted
		resp.Grants = append(resp.Grants, &pb.Grant{
			Vm: a.GetVm(), Granted: granted, Partial: !sameSize(granted, want),
			Reason: fmt.Sprintf("%s free on %s", formatSize(free), v.GetNode()),
		})
	}
	return resp, nil
}

// growDimension grants want when it fits in free, else as many whole units
// as do.
func growDimension[T int64 | uint64](old, want, free, unit T) T {
	if want <= old {
		return old
	}
	if want-old <= free {
		return want
	}
	return old + free/unit*unit
}

func (p *refPlacement) Place(_ context.Context, req *pb.PlaceRequest) (*pb.PlaceResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	best := &pb.PlaceResponse{Reason: "fits on no node"}
	for _, name := range slices.Sorted(maps.Keys(p.nodes)) {
		capacity := p.nodes[name].GetCapacity()
		after := add(p.reserved(name, req.GetVm()), req.GetSize())
		if !fits(after, capacity) {
			continue
		}
		left := sub(capacity, after)
		score := min(float64(left.GetVcpuMilli())/float64(capacity.GetVcpuMilli()),
			float64(left.GetMemoryBytes())/float64(capacity.GetMemoryBytes()))
		if p.pack {
			score = 1 - score
		}
		if best.GetNode() == "" || score > best.GetScore() {
			best = &pb.PlaceResponse{Node: name, Score: score, Reason: fmt.Sprintf("leaves %s free", formatSize(left))}
		}
	}
	return best, nil
}

func (p *refPlacement) PlanMigrations(context.Context, *pb.PlanMigrationsRequest) (*pb.PlanMigrationsResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	names := slices.Sorted(maps.Keys(p.nodes))
	reserved := map[string]*pb.Size{}
	for _, n := range names {
		reserved[n] = p.reserved(n, "")
	}
	over := func(n string) bool {
		return !underWatermark(reserved[n], p.nodes[n].GetCapacity(), p.nodes[n].GetWatermark())
	}
	resp := &pb.PlanMigrationsResponse{}
	for _, from := range names {
		for _, v := range p.cheapestFirst(from) {
			if !over(from) {
				break
			}
			for _, to := range names {
				grown := add(reserved[to], v.GetReserved())
				if to == from || !underWatermark(grown, p.nodes[to].GetCapacity(), p.nodes[to].GetWatermark()) {
					continue
				}
				reserved[from], reserved[to] = sub(reserved[from], v.GetReserved()), grown
				resp.Migrations = append(resp.Migrations, &pb.Migration{Vm: v.GetVm(), From: from, To: to, Reason: from + " above its watermark"})
				break
			}
		}
	}
	return resp, nil
}

// cheapestFirst is node's VMs, least dirty first, then by name.
func (p *refPlacement) cheapestFirst(node string) []*pb.VMPlacement {
	var on []*pb.VMPlacement
	for _, v := range p.vms {
		if v.GetNode() == node {
			on = append(on, v)
		}
	}
	slices.SortFunc(on, func(a, b *pb.VMPlacement) int {
		return cmp.Or(cmp.Compare(a.GetDirtyBytesPerSecond(), b.GetDirtyBytesPerSecond()), cmp.Compare(a.GetVm(), b.GetVm()))
	})
	return on
}

func (p *refPlacement) Snapshot(context.Context, *pb.SnapshotRequest) (*pb.SnapshotResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	resp := &pb.SnapshotResponse{}
	for _, name := range slices.Sorted(maps.Keys(p.nodes)) {
		acc := &pb.NodeAccount{Spec: proto.Clone(p.nodes[name]).(*pb.NodeSpec), Reserved: p.reserved(name, "")}
		for _, v := range p.cheapestFirst(name) {
			acc.Vms = append(acc.Vms, v.GetVm())
		}
		resp.Nodes = append(resp.Nodes, acc)
	}
	for _, name := range slices.Sorted(maps.Keys(p.vms)) {
		resp.Vms = append(resp.Vms, proto.Clone(p.vms[name]).(*pb.VMPlacement))
	}
	return resp, nil
}
