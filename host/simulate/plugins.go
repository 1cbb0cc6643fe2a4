package simulate

import (
	"context"
	"fmt"
	"io"

	"github.com/hashicorp/go-hclog"

	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// launch starts a plugin binary as the host does (out of process, AutoMTLS),
// checks its kind and configures it.
func launch(ctx context.Context, path string, kind pb.Kind, config string, logs io.Writer) (*sdk.Launched, error) {
	p, err := sdk.Launch(sdk.LaunchOptions{
		Path: path,
		// A replay's plugin serves one control loop, one call at a time,
		// and shares two cores with eight other processes: a second
		// scheduler thread only spins looking for work (15% of the
		// replay's CPU, measured). Its live heap is a few MiB that each
		// tick's messages churn through: collecting at 5x it rather than
		// 2x cut the plugins' CPU by a fifth.
		Env:    []string{"GOMAXPROCS=1", "GOGC=400"},
		Logger: hclog.New(&hclog.LoggerOptions{Name: path, Output: logs, Level: hclog.Error}),
	})
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	_, version, err := p.Identify(ctx, "", kind)
	if err == nil {
		err = p.Configure(ctx, []byte(config), version)
	}
	if err != nil {
		p.Kill()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// scalerClient and placementClient are the loop's ports over the plugins'
// gRPC clients.
type scalerClient struct{ c pb.ScalerClient }

func (s scalerClient) Decide(ctx context.Context, req *pb.DecideRequest) (*pb.DecideResponse, error) {
	return s.c.Decide(ctx, req)
}

type placementClient struct{ c pb.PlacementClient }

func (p placementClient) Reset(ctx context.Context) error {
	_, err := p.c.Reset(ctx, &pb.ResetRequest{})
	return err
}

func (p placementClient) Apply(ctx context.Context, events []*pb.PlacementEvent) ([]*pb.EventError, error) {
	resp, err := p.c.Apply(ctx, &pb.ApplyRequest{Events: events})
	return resp.GetErrors(), err
}

func (p placementClient) Grow(ctx context.Context, asks []*pb.GrowthAsk) ([]*pb.Grant, error) {
	resp, err := p.c.Grow(ctx, &pb.GrowRequest{Asks: asks})
	return resp.GetGrants(), err
}

func (p placementClient) Place(ctx context.Context, req *pb.PlaceRequest) (*pb.PlaceResponse, error) {
	return p.c.Place(ctx, req)
}

func (p placementClient) PlanMigrations(ctx context.Context) ([]*pb.Migration, error) {
	resp, err := p.c.PlanMigrations(ctx, &pb.PlanMigrationsRequest{})
	return resp.GetMigrations(), err
}
