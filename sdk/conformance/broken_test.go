package conformance

import (
	"context"
	"encoding/json"
	"time"

	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// Broken variants of the reference plugins, each with one bug a suite must
// catch.

// overshootScaler rounds up after clamping: a goal at its max gains a unit.
type overshootScaler struct{ *refScaler }

func (o overshootScaler) Decide(ctx context.Context, req *pb.DecideRequest) (*pb.DecideResponse, error) {
	resp, err := o.refScaler.Decide(ctx, req)
	if err != nil {
		return nil, err
	}
	for i, d := range resp.GetDecisions() {
		b := req.GetVms()[i].GetBounds()
		if d.GetGoal().GetVcpuMilli() == b.GetMax().GetVcpuMilli() {
			d.Goal.VcpuMilli += b.GetUnit().GetVcpuMilli()
		}
		if d.GetGoal().GetMemoryBytes() == b.GetMax().GetMemoryBytes() {
			d.Goal.MemoryBytes += b.GetUnit().GetMemoryBytes()
		}
	}
	return resp, nil
}

// stickyScaler never aims below the current size.
type stickyScaler struct{ *refScaler }

func (s stickyScaler) Decide(ctx context.Context, req *pb.DecideRequest) (*pb.DecideResponse, error) {
	resp, err := s.refScaler.Decide(ctx, req)
	if err != nil {
		return nil, err
	}
	for i, d := range resp.GetDecisions() {
		in := req.GetVms()[i]
		d.Goal = clampSize(size(
			max(d.GetGoal().GetVcpuMilli(), in.GetCurrent().GetVcpuMilli()),
			max(d.GetGoal().GetMemoryBytes(), in.GetCurrent().GetMemoryBytes()),
		), in.GetBounds())
	}
	return resp, nil
}

// wallClockScaler reads the wall clock instead of the request's time.
type wallClockScaler struct{ *refScaler }

func (w wallClockScaler) Decide(ctx context.Context, req *pb.DecideRequest) (*pb.DecideResponse, error) {
	resp, err := w.refScaler.Decide(ctx, req)
	if err != nil {
		return nil, err
	}
	for _, d := range resp.GetDecisions() {
		d.Reason += " at " + time.Now().Format(time.RFC3339Nano)
	}
	return resp, nil
}

// lenientScaler ignores settings it does not know.
type lenientScaler struct{ *refScaler }

func (l lenientScaler) SetConfig(_ context.Context, configJSON []byte, _ uint32) error {
	var cfg scalerConfig
	if err := json.Unmarshal(configJSON, &cfg); err != nil {
		return err
	}
	return l.configure(cfg)
}

// kindLiar is a scaler that says it is a placement plugin (and serves the
// placement service, unimplemented, so that it can say so).
type kindLiar struct {
	*refScaler
	pb.UnimplementedPlacementServer
}

func (k kindLiar) Info() sdk.Info {
	info := k.refScaler.Info()
	info.Kind = pb.Kind_KIND_PLACEMENT
	return info
}

// badSchemaScaler announces a schema of its own.
type badSchemaScaler struct {
	*refScaler
	schema *pb.ConfigSchema
}

func (b badSchemaScaler) ConfigSchema() *pb.ConfigSchema { return b.schema }

// overcommitPlacement grants every ask whole, whether it fits or not.
type overcommitPlacement struct{ *refPlacement }

func (o overcommitPlacement) Grow(_ context.Context, req *pb.GrowRequest) (*pb.GrowResponse, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	resp := &pb.GrowResponse{}
	for _, a := range req.GetAsks() {
		o.vms[a.GetVm()].Reserved = a.GetWant()
		resp.Grants = append(resp.Grants, &pb.Grant{Vm: a.GetVm(), Granted: a.GetWant(), Reason: "always"})
	}
	return resp, nil
}
