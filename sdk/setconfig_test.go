package sdk_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
	"github.com/vertigo-autoscaler/vertigo/sdk/sdktest"
)

type minimalScaler struct {
	pb.UnimplementedScalerServer
	configured int
}

func (m *minimalScaler) Info() sdk.Info {
	return sdk.Info{Name: "minimal", Kind: pb.Kind_KIND_SCALER, Version: "0", APIVersions: []uint32{1}}
}
func (m *minimalScaler) ConfigSchema() *pb.ConfigSchema { return &pb.ConfigSchema{} }
func (m *minimalScaler) SetConfig(context.Context, []byte, uint32) error {
	m.configured++
	return nil
}
func (m *minimalScaler) Capabilities(context.Context) []string { return nil }
func (m *minimalScaler) Health(context.Context) error          { return nil }

// The SDK refuses an API version the plugin did not declare before the
// plugin's own code sees the config.
func TestSetConfigRefusesAnUndeclaredAPIVersion(t *testing.T) {
	impl := &minimalScaler{}
	c := sdktest.Connect(t, impl)
	_, err := c.Base.SetConfig(context.Background(), &pb.SetConfigRequest{ConfigJson: []byte("{}"), ApiVersion: 7})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.ErrorContains(t, err, `api_version: 7 is not one plugin "minimal" speaks (v1)`)
	require.Zero(t, impl.configured)

	require.NoError(t, c.Configure(context.Background(), []byte("{}"), 1))
	require.Equal(t, 1, impl.configured)
}
