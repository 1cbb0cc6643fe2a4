package control

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/vertigo-autoscaler/vertigo/host/model"
	"github.com/vertigo-autoscaler/vertigo/host/store"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// Test doubles for the loop's ports. The real plugins are exercised in
// integration_test.go; these pin down the loop's own rules.

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

// scriptedScaler returns the goals the test sets, and records what it was asked.
type scriptedScaler struct {
	mu    sync.Mutex
	goals map[string]model.Size
	reply func(*pb.DecideRequest) (*pb.DecideResponse, error)
	asked []*pb.DecideRequest
}

func (s *scriptedScaler) Decide(_ context.Context, req *pb.DecideRequest) (*pb.DecideResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, req)
	if s.reply != nil {
		return s.reply(req)
	}
	resp := &pb.DecideResponse{}
	for _, in := range req.GetVms() {
		g, ok := s.goals[in.GetVm()]
		if !ok {
			g = model.SizeFrom(in.GetCurrent())
		}
		resp.Decisions = append(resp.Decisions, &pb.ScalerDecision{Vm: in.GetVm(), Goal: g.Proto(), Reason: "scripted", State: []byte("state-of-" + in.GetVm())})
	}
	return resp, nil
}

// capacityPlacement grants growth up to a fixed free capacity per VM.
type capacityPlacement struct {
	mu        sync.Mutex
	limit     map[string]model.Size // the most a VM may be granted
	reserved  map[string]model.Size
	applied   []*pb.PlacementEvent
	calls     int               // Apply calls
	refuse    map[string]string // VM upserts refused, with the message
	onApply   func(*pb.PlacementEvent)
	overgrant bool
	plans     []*pb.Migration // what PlanMigrations proposes
	planCalls int
}

func (p *capacityPlacement) Reset(context.Context) error { return nil }

func (p *capacityPlacement) Apply(_ context.Context, events []*pb.PlacementEvent) ([]*pb.EventError, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	var errs []*pb.EventError
	for i, e := range events {
		if u := e.GetVmUpsert(); u != nil {
			if msg, ok := p.refuse[u.GetVm()]; ok {
				errs = append(errs, &pb.EventError{Index: uint32(i), Message: msg})
				continue
			}
			p.reserved[u.GetVm()] = model.SizeFrom(u.GetReserved())
		}
		p.applied = append(p.applied, e)
		if p.onApply != nil {
			p.onApply(e)
		}
	}
	return errs, nil
}

func (p *capacityPlacement) Grow(_ context.Context, asks []*pb.GrowthAsk) ([]*pb.Grant, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*pb.Grant
	for _, a := range asks {
		want := model.SizeFrom(a.GetWant())
		g := minSize(want, p.limit[a.GetVm()])
		g = maxSize(g, p.reserved[a.GetVm()])
		if p.overgrant {
			g = model.Size{VCPUMilli: want.VCPUMilli * 10, MemoryBytes: want.MemoryBytes * 10}
		}
		p.reserved[a.GetVm()] = g
		out = append(out, &pb.Grant{Vm: a.GetVm(), Granted: g.Proto(), Partial: g != want, Reason: fmt.Sprintf("limit %s", p.limit[a.GetVm()])})
	}
	return out, nil
}

func (p *capacityPlacement) Place(context.Context, *pb.PlaceRequest) (*pb.PlaceResponse, error) {
	return &pb.PlaceResponse{Node: "n1"}, nil
}

func (p *capacityPlacement) PlanMigrations(context.Context) ([]*pb.Migration, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.planCalls++
	return p.plans, nil
}

// fakeHypervisor resizes instantly, checks that growth never outruns the
// reservation in the store, and can refuse or fail.
type fakeHypervisor struct {
	mu      sync.Mutex
	store   store.Store
	sizes   map[string]model.Size
	refuse  string
	fail    error
	forced  []bool
	overrun []string
}

func (h *fakeHypervisor) Resize(ctx context.Context, vm string, target model.Size, force bool, _ time.Duration) (Resized, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail != nil {
		return Resized{}, h.fail
	}
	cur := h.sizes[vm]
	shrinking := target.VCPUMilli < cur.VCPUMilli || target.MemoryBytes < cur.MemoryBytes
	h.forced = append(h.forced, force)
	if shrinking && h.refuse != "" && !force {
		return Resized{Actual: cur, Refused: true, Reason: h.refuse}, nil
	}
	stored, err := h.store.GetVM(ctx, vm)
	if err != nil {
		return Resized{}, err
	}
	if !target.Fits(stored.Reserved) {
		h.overrun = append(h.overrun, fmt.Sprintf("%s: resize to %s with only %s reserved", vm, target, stored.Reserved))
	}
	h.sizes[vm] = target
	return Resized{Actual: target}, nil
}

type staticGuests struct{ events map[string][]*pb.GuestEvent }

func (g staticGuests) Window(vm string) (*pb.MetricsWindow, []*pb.GuestEvent, bool) {
	return &pb.MetricsWindow{TUnixNano: []int64{1}, Load1: []float64{1}}, g.events[vm], true
}

type countingRecorder struct {
	mu       sync.Mutex
	outcomes map[string]int
}

func (r *countingRecorder) Decision(o string) { r.mu.Lock(); r.outcomes[o]++; r.mu.Unlock() }
func (r *countingRecorder) Grant(string)      {}
func (r *countingRecorder) Denial()           {}
func (r *countingRecorder) count(o string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.outcomes[o]
}
