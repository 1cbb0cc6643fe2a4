package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
	"github.com/vertigo-autoscaler/vertigo/sdk/schema"
)

// TestBinaryServesThePlugin builds the plugin and starts it as the host
// does: go-plugin's handshake fails if main prints anything on stdout.
func TestBinaryServesThePlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go toolchain on PATH to build the plugin with")
	}
	bin := filepath.Join(t.TempDir(), pluginName)
	out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))

	l, err := sdk.Launch(sdk.LaunchOptions{Path: bin})
	require.NoError(t, err)
	t.Cleanup(l.Kill)
	ctx := context.Background()
	_, version, err := l.Identify(ctx, pluginName, pb.Kind_KIND_PLACEMENT)
	require.NoError(t, err)
	defaults, err := schema.Defaults(configSchema())
	require.NoError(t, err)
	require.NoError(t, l.Configure(ctx, defaults, version))

	require.Empty(t, apply(t, l.Placement, nodeUpsert("n1", size(8, 32), 0.9)))
	placed, err := l.Placement.Place(ctx, &pb.PlaceRequest{Vm: "a", Size: size(2, 4), Unit: size(1, 1)})
	require.NoError(t, err)
	require.Equal(t, "n1", placed.GetNode())
}
