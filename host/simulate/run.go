package simulate

import (
	"context"
	"fmt"
	"io"

	"github.com/hashicorp/go-hclog"

	"github.com/vertigo-autoscaler/vertigo/host/control"
	"github.com/vertigo-autoscaler/vertigo/host/model"
	"github.com/vertigo-autoscaler/vertigo/host/store"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// Policy is a scaler configuration to compare: every policy is a mode of the
// real scaler plugin, not a special case of the simulator.
type Policy struct {
	Name   string
	Scaler string // the scaler plugin's configuration, JSON
}

// Policies are the four the simulator compares, in the order it reports.
var Policies = []Policy{
	{Name: "default", Scaler: `{}`},
	{Name: "neon", Scaler: `{"mode": "neon"}`},
	{Name: "static-peak", Scaler: `{"mode": "peak"}`},
	{Name: "vpa", Scaler: `{"mode": "percentile"}`},
}

// Options are what every policy's replay shares.
type Options struct {
	ScalerBin, PlacementBin string
	// Placement is the placement plugin's configuration, JSON.
	Placement string
	Nodes     int
	Node      model.Size // each node's capacity
	Watermark float64
	// Bounds apply to every VM; a VM without memory readings has its memory
	// pinned at FixedMemory instead.
	Bounds      model.Bounds
	FixedMemory uint64
	// Window is how many steps of metrics each decision sees.
	Window int
	// Logs receives the plugins' errors.
	Logs io.Writer
}

// bounds are a VM's bounds: memory is pinned when the trace has none.
func (o Options) bounds(s Series) model.Bounds {
	b := o.Bounds
	if s.Mem == nil {
		b.Min.MemoryBytes, b.Max.MemoryBytes = o.FixedMemory, o.FixedMemory
	}
	return b
}

// replay runs one policy over the grid with its own scaler and placement
// processes, through the host's control loop, one Tick per step. Every VM
// starts at its minimum size. progress is called after each step.
func replay(ctx context.Context, g *Grid, p Policy, o Options, progress func()) (*fleet, error) {
	scaler, err := launch(ctx, o.ScalerBin, pb.Kind_KIND_SCALER, p.Scaler, o.Logs)
	if err != nil {
		return nil, err
	}
	defer scaler.Kill()
	pp, err := launch(ctx, o.PlacementBin, pb.Kind_KIND_PLACEMENT, o.Placement, o.Logs)
	if err != nil {
		return nil, err
	}
	defer pp.Kill()
	placement := placementClient{pp.Placement}

	st := store.NewMemory()
	defer st.Close()
	for i := range o.Nodes {
		n := model.Node{Name: fmt.Sprintf("node-%02d", i), Capacity: o.Node, Watermark: o.Watermark}
		if _, err := st.PutNode(ctx, n); err != nil {
			return nil, err
		}
	}
	if err := control.ReplayPlacement(ctx, placement, st); err != nil {
		return nil, err
	}
	initial := make([]model.Size, len(g.VMs))
	for i, s := range g.VMs {
		b := o.bounds(s)
		resp, err := placement.Place(ctx, &pb.PlaceRequest{Vm: s.ID, Size: b.Min.Proto(), Unit: b.Unit.Proto()})
		if err != nil {
			return nil, fmt.Errorf("placing vm %s: %w", s.ID, err)
		}
		if resp.GetNode() == "" {
			return nil, fmt.Errorf("vm %s fits on no node at its minimum size: %s", s.ID, resp.GetReason())
		}
		vm := model.VM{Name: s.ID, Node: resp.GetNode(), Phase: model.PhaseRunning, Bounds: b, Reserved: b.Min, Size: b.Min}
		if _, err := st.PutVM(ctx, vm); err != nil {
			return nil, err
		}
		initial[i] = b.Min
	}

	f := newFleet(g, o.Window, initial)
	loop := control.New(control.Config{
		Store: st, Scaler: scalerClient{scaler.Scaler}, Placement: placement,
		Hypervisor: f, Guests: f, Migrator: f, Clock: f, Recorder: f,
		Log: hclog.NewNullLogger(),
		// Resizes take no time here: one at a time costs nothing, and the
		// loop then runs them inline, with no goroutine per VM per step.
		Parallel: 1,
		// Nothing reads the reasons of a replay's decisions.
		Brief: true,
	})
	for k := range g.Steps {
		f.begin(k)
		if err := loop.Tick(ctx); err != nil {
			return nil, fmt.Errorf("%s: step %d: %w", p.Name, k, err)
		}
		progress()
	}
	return f, nil
}
