package sdk

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// Client is the host's typed view of one plugin over one gRPC connection.
// Only the kind the plugin declares is served; calling another kind's client
// fails with codes.Unimplemented.
type Client struct {
	Conn       *grpc.ClientConn
	Base       pb.BaseClient
	Scaler     pb.ScalerClient
	Placement  pb.PlacementClient
	Hypervisor pb.HypervisorClient
	Network    pb.NetworkClient
}

// NewClient wraps a connection to a plugin.
func NewClient(c *grpc.ClientConn) *Client {
	return &Client{
		Conn:       c,
		Base:       pb.NewBaseClient(c),
		Scaler:     pb.NewScalerClient(c),
		Placement:  pb.NewPlacementClient(c),
		Hypervisor: pb.NewHypervisorClient(c),
		Network:    pb.NewNetworkClient(c),
	}
}

// IdentityError says what the host expected of a plugin and what it got.
type IdentityError struct {
	WantName, GotName string
	WantKind, GotKind pb.Kind
}

func (e *IdentityError) Error() string {
	return fmt.Sprintf("plugin identity mismatch: expected name=%q kind=%s, got name=%q kind=%s",
		e.WantName, KindName(e.WantKind), e.GotName, KindName(e.GotKind))
}

// Identify checks that the plugin is the one the configuration names and
// negotiates the API version. An empty wantName accepts any name.
func (c *Client) Identify(ctx context.Context, wantName string, wantKind pb.Kind) (*pb.PluginInfoResponse, uint32, error) {
	info, err := c.Base.PluginInfo(ctx, &pb.PluginInfoRequest{})
	if err != nil {
		return nil, 0, fmt.Errorf("asking plugin for its identity: %w", err)
	}
	if (wantName != "" && info.GetName() != wantName) || info.GetKind() != wantKind {
		return info, 0, &IdentityError{WantName: wantName, GotName: info.GetName(), WantKind: wantKind, GotKind: info.GetKind()}
	}
	v, err := Negotiate(APIVersions, info.GetApiVersions(), info.GetName())
	if err != nil {
		return info, 0, err
	}
	return info, v, nil
}

// Configure sends the decoded configuration. Field errors come back as
// FieldErrors so the caller can place them in the config file.
func (c *Client) Configure(ctx context.Context, configJSON []byte, apiVersion uint32) error {
	resp, err := c.Base.SetConfig(ctx, &pb.SetConfigRequest{ConfigJson: configJSON, ApiVersion: apiVersion})
	if err != nil {
		return fmt.Errorf("SetConfig: %w", err)
	}
	if len(resp.GetErrors()) > 0 {
		fe := make(FieldErrors, len(resp.GetErrors()))
		for i, e := range resp.GetErrors() {
			fe[i] = FieldError{Field: e.GetField(), Message: e.GetMessage()}
		}
		return fe
	}
	return nil
}

// Healthy returns nil when the plugin answers its health check and says it
// is healthy.
func (c *Client) Healthy(ctx context.Context) error {
	resp, err := c.Base.Health(ctx, &pb.HealthRequest{})
	if err != nil {
		return err
	}
	if !resp.GetHealthy() {
		return fmt.Errorf("plugin reports unhealthy: %s", resp.GetMessage())
	}
	return nil
}

// Capabilities returns the plugin's capabilities as a set.
func (c *Client) Capabilities(ctx context.Context) (map[string]bool, error) {
	resp, err := c.Base.Capabilities(ctx, &pb.CapabilitiesRequest{})
	if err != nil {
		return nil, err
	}
	set := make(map[string]bool, len(resp.GetCapabilities()))
	for _, c := range resp.GetCapabilities() {
		set[c] = true
	}
	return set, nil
}
