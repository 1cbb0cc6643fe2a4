package daemon

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vertigo-autoscaler/vertigo/host/control"
	"github.com/vertigo-autoscaler/vertigo/host/model"
	"github.com/vertigo-autoscaler/vertigo/host/supervisor"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// CallObserver times plugin calls (Prometheus in production).
type CallObserver func(plugin, method string, d time.Duration)

// caller bounds every plugin call with the call timeout, times it, and tells
// the supervisor at once when the plugin looks dead, so a crash is repaired
// before the next health tick.
type caller struct {
	name    string
	get     func() (*sdk.Client, error)
	kick    func()
	timeout time.Duration
	observe CallObserver
}

func supervised(p *supervisor.Plugin, timeout time.Duration, observe CallObserver) caller {
	return caller{name: p.Name(), get: p.Client, kick: p.Kick, timeout: timeout, observe: observe}
}

// direct calls a client the supervisor has not handed out yet (restore
// hooks run before it does).
func direct(name string, c *sdk.Client, timeout time.Duration) caller {
	return caller{name: name, get: func() (*sdk.Client, error) { return c, nil }, kick: func() {}, timeout: timeout}
}

func call[T any](ctx context.Context, c caller, method string, f func(context.Context, *sdk.Client) (T, error)) (T, error) {
	var zero T
	cl, err := c.get()
	if err != nil {
		return zero, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	start := time.Now()
	v, err := f(ctx, cl)
	if c.observe != nil {
		c.observe(c.name, method, time.Since(start))
	}
	if code := status.Code(err); code == codes.Unavailable || code == codes.DeadlineExceeded || code == codes.Canceled && ctx.Err() != nil {
		c.kick()
	}
	return v, err
}

// scalerClient is control.Scaler over a supervised plugin.
type scalerClient struct{ caller }

func (s scalerClient) Decide(ctx context.Context, req *pb.DecideRequest) (*pb.DecideResponse, error) {
	return call(ctx, s.caller, "Decide", func(ctx context.Context, c *sdk.Client) (*pb.DecideResponse, error) {
		return c.Scaler.Decide(ctx, req)
	})
}

// placementClient is control.Placement over a supervised plugin.
type placementClient struct{ caller }

func (p placementClient) Reset(ctx context.Context) error {
	_, err := call(ctx, p.caller, "Reset", func(ctx context.Context, c *sdk.Client) (*pb.ResetResponse, error) {
		return c.Placement.Reset(ctx, &pb.ResetRequest{})
	})
	return err
}

func (p placementClient) Apply(ctx context.Context, events []*pb.PlacementEvent) ([]*pb.EventError, error) {
	resp, err := call(ctx, p.caller, "Apply", func(ctx context.Context, c *sdk.Client) (*pb.ApplyResponse, error) {
		return c.Placement.Apply(ctx, &pb.ApplyRequest{Events: events})
	})
	return resp.GetErrors(), err
}

func (p placementClient) Grow(ctx context.Context, asks []*pb.GrowthAsk) ([]*pb.Grant, error) {
	resp, err := call(ctx, p.caller, "Grow", func(ctx context.Context, c *sdk.Client) (*pb.GrowResponse, error) {
		return c.Placement.Grow(ctx, &pb.GrowRequest{Asks: asks})
	})
	return resp.GetGrants(), err
}

func (p placementClient) Place(ctx context.Context, req *pb.PlaceRequest) (*pb.PlaceResponse, error) {
	return call(ctx, p.caller, "Place", func(ctx context.Context, c *sdk.Client) (*pb.PlaceResponse, error) {
		return c.Placement.Place(ctx, req)
	})
}

func (p placementClient) PlanMigrations(ctx context.Context) ([]*pb.Migration, error) {
	resp, err := call(ctx, p.caller, "PlanMigrations", func(ctx context.Context, c *sdk.Client) (*pb.PlanMigrationsResponse, error) {
		return c.Placement.PlanMigrations(ctx, &pb.PlanMigrationsRequest{})
	})
	return resp.GetMigrations(), err
}

func (p placementClient) Snapshot(ctx context.Context) (*pb.SnapshotResponse, error) {
	return call(ctx, p.caller, "Snapshot", func(ctx context.Context, c *sdk.Client) (*pb.SnapshotResponse, error) {
		return c.Placement.Snapshot(ctx, &pb.SnapshotRequest{})
	})
}

// hypervisorClient is the hypervisor plugin as the loop and the daemon use
// it.
type hypervisorClient struct{ caller }

func (h hypervisorClient) Resize(ctx context.Context, vm string, target model.Size, force bool, consent time.Duration) (control.Resized, error) {
	// A resize waits for the guest (consent, onlining): allow it the
	// consent time on top of the usual call timeout.
	c := h.caller
	c.timeout += consent
	resp, err := call(ctx, c, "Resize", func(ctx context.Context, cl *sdk.Client) (*pb.ResizeResponse, error) {
		return cl.Hypervisor.Resize(ctx, &pb.ResizeRequest{Name: vm, Target: target.Proto(), Force: force, ConsentTimeoutNanos: int64(consent)})
	})
	if err != nil {
		return control.Resized{}, err
	}
	return control.Resized{Actual: model.SizeFrom(resp.GetActual()), Refused: resp.GetRefused(), Reason: resp.GetRefusalReason()}, nil
}

// StartVM boots a VM; it may take as long as a guest takes to boot.
func (h hypervisorClient) StartVM(ctx context.Context, spec *pb.VMSpec, boot time.Duration) (*pb.VMStatus, error) {
	c := h.caller
	c.timeout += boot
	resp, err := call(ctx, c, "StartVM", func(ctx context.Context, cl *sdk.Client) (*pb.StartVMResponse, error) {
		return cl.Hypervisor.StartVM(ctx, &pb.StartVMRequest{Spec: spec})
	})
	return resp.GetStatus(), err
}

func (h hypervisorClient) StopVM(ctx context.Context, name string, grace time.Duration) error {
	c := h.caller
	c.timeout += grace
	_, err := call(ctx, c, "StopVM", func(ctx context.Context, cl *sdk.Client) (*pb.StopVMResponse, error) {
		return cl.Hypervisor.StopVM(ctx, &pb.StopVMRequest{Name: name, GraceNanos: int64(grace)})
	})
	return err
}

func (h hypervisorClient) ListVMs(ctx context.Context) ([]*pb.VMStatus, error) {
	resp, err := call(ctx, h.caller, "ListVMs", func(ctx context.Context, cl *sdk.Client) (*pb.ListVMsResponse, error) {
		return cl.Hypervisor.ListVMs(ctx, &pb.ListVMsRequest{})
	})
	return resp.GetVms(), err
}

func (h hypervisorClient) GenerateLoad(ctx context.Context, req *pb.GenerateLoadRequest) error {
	_, err := call(ctx, h.caller, "GenerateLoad", func(ctx context.Context, cl *sdk.Client) (*pb.GenerateLoadResponse, error) {
		return cl.Hypervisor.GenerateLoad(ctx, req)
	})
	return err
}

// hypervisorMigrator is control.Migrator over the plugin's progress stream.
// With a network plugin, the VM's port on the target exists before the
// destination starts, and the port that lost is removed after.
type hypervisorMigrator struct {
	caller
	bandwidth uint64
	downtime  time.Duration
	net       *networkClient // nil without a network plugin
	log       hclog.Logger
}

func (h hypervisorMigrator) Migrate(ctx context.Context, vm, to string, progress func(*pb.MigrationProgress)) ([]byte, error) {
	req := &pb.MigrateRequest{Name: vm, TargetNode: to, MaxBandwidthBytesPerSecond: h.bandwidth, DowntimeLimitNanos: int64(h.downtime)}
	if h.net == nil {
		return h.migrate(ctx, req, progress)
	}
	from := h.node(ctx, vm)
	port, err := h.net.prepareMigration(ctx, vm, to)
	if err != nil {
		return nil, err
	}
	req.TargetTap, req.TargetNetns = port.GetTap(), port.GetNetns()
	handle, err := h.migrate(ctx, req, progress)
	// The VM runs where the outcome says whatever the network answers: a
	// port left behind is removed when the host next adopts its VMs.
	if cerr := h.net.completeMigration(ctx, vm, from, to, err == nil); cerr != nil {
		h.log.Error("finishing a migration's network ports failed", "vm", vm, "from", from, "to", to, "migrated", err == nil, "error", cerr)
	}
	return handle, err
}

func (h hypervisorMigrator) migrate(ctx context.Context, req *pb.MigrateRequest, progress func(*pb.MigrationProgress)) ([]byte, error) {
	cl, err := h.get()
	if err != nil {
		return nil, err
	}
	vm := req.GetName()
	stream, err := cl.Hypervisor.Migrate(ctx, req)
	if err != nil {
		return nil, err
	}
	for {
		p, err := stream.Recv()
		if err == io.EOF {
			return nil, fmt.Errorf("the hypervisor ended the migration of %s without an outcome", vm)
		}
		if err != nil {
			h.kick()
			return nil, err
		}
		progress(p)
		switch p.GetPhase() {
		case pb.MigrationPhase_MIGRATION_PHASE_COMPLETED:
			return h.handle(ctx, vm), nil
		case pb.MigrationPhase_MIGRATION_PHASE_FAILED, pb.MigrationPhase_MIGRATION_PHASE_CANCELLED:
			return nil, fmt.Errorf("migration %s: %s", strings.ToLower(strings.TrimPrefix(p.GetPhase().String(), "MIGRATION_PHASE_")), p.GetMessage())
		}
	}
}

// node is where the hypervisor runs the VM now ("" when it cannot say).
func (h hypervisorMigrator) node(ctx context.Context, vm string) string {
	return h.status(ctx, vm).GetNode()
}

// handle is the VM's handle as the hypervisor now lists it: after a
// migration, that of the destination's process. The VM has moved whatever
// this finds: a handle it cannot find (nil) is refreshed when the host next
// adopts its VMs, which lists them anyway.
func (h hypervisorMigrator) handle(ctx context.Context, vm string) []byte {
	return h.status(ctx, vm).GetHandle()
}

func (h hypervisorMigrator) status(ctx context.Context, vm string) *pb.VMStatus {
	vms, _ := hypervisorClient{h.caller}.ListVMs(ctx)
	for _, st := range vms {
		if st.GetName() == vm {
			return st
		}
	}
	return nil
}

// reports opens the plugin's guest report stream for guests.Buffer.
func (h hypervisorClient) reports(ctx context.Context) (interface {
	Recv() (*pb.GuestReport, error)
}, error) {
	cl, err := h.get()
	if err != nil {
		return nil, err
	}
	return cl.Hypervisor.GuestReports(ctx, &pb.GuestReportsRequest{})
}
