package control

import (
	"context"
	"time"

	"github.com/vertigo-autoscaler/vertigo/host/model"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// The loop's view of the plugins and the world: small interfaces so that the
// loop neither knows nor cares whether a plugin is out of process, restarting,
// or a test double.

// Clock is injected so that a day of a fleet replays in seconds.
type Clock interface{ Now() time.Time }

// RealClock is the wall clock.
type RealClock struct{}

func (RealClock) Now() time.Time { return time.Now() }

// Scaler turns metrics into goals.
type Scaler interface {
	Decide(ctx context.Context, req *pb.DecideRequest) (*pb.DecideResponse, error)
}

// Placement keeps the fleet's accounting.
type Placement interface {
	Reset(ctx context.Context) error
	Apply(ctx context.Context, events []*pb.PlacementEvent) ([]*pb.EventError, error)
	Grow(ctx context.Context, asks []*pb.GrowthAsk) ([]*pb.Grant, error)
	Place(ctx context.Context, req *pb.PlaceRequest) (*pb.PlaceResponse, error)
	PlanMigrations(ctx context.Context) ([]*pb.Migration, error)
}

// Resized is what a hypervisor did with a resize request.
type Resized struct {
	Actual  model.Size
	Refused bool
	Reason  string
}

// Hypervisor changes a running VM's size. A downscale asks the guest first
// unless force is set.
type Hypervisor interface {
	Resize(ctx context.Context, vm string, target model.Size, force bool, consentTimeout time.Duration) (Resized, error)
}

// Migrator live-migrates a VM to another node, reporting progress; it
// returns the VM's new handle once the VM runs on the target. On error the
// VM still runs where it was.
type Migrator interface {
	Migrate(ctx context.Context, vm, to string, progress func(*pb.MigrationProgress)) (handle []byte, err error)
}

// Guests hands out each VM's recent metrics and the guest events since the
// last call. ok is false when the VM has reported nothing yet: no decision
// is made on no data.
type Guests interface {
	Window(vm string) (w *pb.MetricsWindow, events []*pb.GuestEvent, ok bool)
}

// Recorder counts outcomes (Prometheus in production).
type Recorder interface {
	Decision(outcome string)
	Grant(result string)
	Denial()
}

type nopRecorder struct{}

func (nopRecorder) Decision(string) {}
func (nopRecorder) Grant(string)    {}
func (nopRecorder) Denial()         {}
