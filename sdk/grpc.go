package sdk

import (
	"context"
	"errors"
	"fmt"
	"slices"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// grpcPlugin adapts a plugin implementation to go-plugin's GRPCPlugin. On the
// plugin side impl is set; on the host side it is nil and GRPCClient builds
// a Client.
type grpcPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	impl Base
}

func (p *grpcPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	return Register(s, p.impl)
}

func (p *grpcPlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewClient(c), nil
}

// Register registers impl's Base service and the service of the kind its
// Info declares on s. It fails when impl does not implement that kind's
// server interface, so a plugin cannot claim a kind it does not serve.
func Register(s *grpc.Server, impl Base) error {
	info := impl.Info()
	pb.RegisterBaseServer(s, &baseServer{impl: impl})
	switch info.Kind {
	case pb.Kind_KIND_SCALER:
		k, ok := impl.(pb.ScalerServer)
		if !ok {
			return fmt.Errorf("plugin %q declares kind scaler but does not implement vertigov1.ScalerServer", info.Name)
		}
		pb.RegisterScalerServer(s, k)
	case pb.Kind_KIND_PLACEMENT:
		k, ok := impl.(pb.PlacementServer)
		if !ok {
			return fmt.Errorf("plugin %q declares kind placement but does not implement vertigov1.PlacementServer", info.Name)
		}
		pb.RegisterPlacementServer(s, k)
	case pb.Kind_KIND_HYPERVISOR:
		k, ok := impl.(pb.HypervisorServer)
		if !ok {
			return fmt.Errorf("plugin %q declares kind hypervisor but does not implement vertigov1.HypervisorServer", info.Name)
		}
		pb.RegisterHypervisorServer(s, k)
	case pb.Kind_KIND_NETWORK:
		k, ok := impl.(pb.NetworkServer)
		if !ok {
			return fmt.Errorf("plugin %q declares kind network but does not implement vertigov1.NetworkServer", info.Name)
		}
		pb.RegisterNetworkServer(s, k)
	default:
		return fmt.Errorf("plugin %q declares no kind", info.Name)
	}
	return nil
}

type baseServer struct {
	pb.UnimplementedBaseServer
	impl Base
}

func (b *baseServer) PluginInfo(context.Context, *pb.PluginInfoRequest) (*pb.PluginInfoResponse, error) {
	i := b.impl.Info()
	return &pb.PluginInfoResponse{Name: i.Name, Kind: i.Kind, PluginVersion: i.Version, ApiVersions: i.APIVersions}, nil
}

func (b *baseServer) ConfigSchema(context.Context, *pb.ConfigSchemaRequest) (*pb.ConfigSchemaResponse, error) {
	return &pb.ConfigSchemaResponse{Schema: b.impl.ConfigSchema()}, nil
}

func (b *baseServer) SetConfig(ctx context.Context, req *pb.SetConfigRequest) (*pb.SetConfigResponse, error) {
	// Checked here, once for every plugin: a host must use a version from
	// PluginInfo, and a plugin must not guess what another one means.
	if info := b.impl.Info(); !slices.Contains(info.APIVersions, req.GetApiVersion()) {
		return nil, status.Errorf(codes.InvalidArgument, "api_version: %d is not one plugin %q speaks (%s)", req.GetApiVersion(), info.Name, versionList(info.APIVersions))
	}
	err := b.impl.SetConfig(ctx, req.GetConfigJson(), req.GetApiVersion())
	var fe FieldErrors
	if errors.As(err, &fe) {
		resp := &pb.SetConfigResponse{}
		for _, e := range fe {
			resp.Errors = append(resp.Errors, &pb.FieldError{Field: e.Field, Message: e.Message})
		}
		return resp, nil
	}
	if err != nil {
		return nil, err
	}
	return &pb.SetConfigResponse{}, nil
}

func (b *baseServer) Capabilities(ctx context.Context, _ *pb.CapabilitiesRequest) (*pb.CapabilitiesResponse, error) {
	return &pb.CapabilitiesResponse{Capabilities: b.impl.Capabilities(ctx)}, nil
}

func (b *baseServer) Health(ctx context.Context, _ *pb.HealthRequest) (*pb.HealthResponse, error) {
	if err := b.impl.Health(ctx); err != nil {
		return &pb.HealthResponse{Healthy: false, Message: err.Error()}, nil
	}
	return &pb.HealthResponse{Healthy: true}, nil
}
