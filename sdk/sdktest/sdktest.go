// Package sdktest runs a plugin implementation in the test's own process,
// over a real gRPC connection (go-plugin's TestPluginGRPCConn), so plugin
// authors test their code exactly as the host will call it, without
// building a binary.
package sdktest

import (
	"testing"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/vertigo-autoscaler/vertigo/sdk"
)

// Connect serves impl in-process and returns a client to it. The connection
// is closed when the test ends.
func Connect(t testing.TB, impl sdk.Base) *sdk.Client {
	t.Helper()
	client, server := goplugin.TestPluginGRPCConn(t, false, sdk.PluginSet(impl))
	// Stop the server before closing the client: Close's shutdown RPC
	// would otherwise stop the server concurrently (a race in go-plugin).
	t.Cleanup(func() {
		server.Stop()
		client.Close()
	})
	raw, err := client.Dispense("vertigo")
	if err != nil {
		t.Fatalf("dispensing in-process plugin: %v", err)
	}
	return raw.(*sdk.Client)
}
