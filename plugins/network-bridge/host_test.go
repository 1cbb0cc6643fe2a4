package main

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/vertigo-autoscaler/vertigo/plugins/network-bridge/netdev"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// TestHostModeBinaryJoinsTwoMachines runs the built binary as the host
// would, in host mode, once in each of two namespaces that stand for two
// machines on a LAN: a VM on the first is reached from the second over the
// overlay between the two plugins.
func TestHostModeBinaryJoinsTwoMachines(t *testing.T) {
	needRoot(t)
	if testing.Short() {
		t.Skip("builds the plugin binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go toolchain on PATH to build the plugin with")
	}
	ipTool, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("no ip(8) to run the plugin in a namespace with")
	}
	bin := filepath.Join(t.TempDir(), pluginName)
	out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))

	prefix := testPrefix(t)
	lan := prefix + "lan"
	require.NoError(t, netdev.EnsureNamespace(lan))
	require.NoError(t, netdev.EnsureBridge(lan, "lan0"))
	machines := []struct{ ns, node, addr, peer string }{
		{prefix + "m1", "m1", "10.240.0.1", "10.240.0.2"},
		{prefix + "m2", "m2", "10.240.0.2", "10.240.0.1"},
	}
	ctx := context.Background()
	plugins := make([]pb.NetworkClient, len(machines))
	for i, m := range machines {
		require.NoError(t, netdev.EnsureNamespace(m.ns))
		require.NoError(t, netdev.EnsureVeth(netdev.Veth{NS: m.ns, Name: "eth0", PeerNS: lan, PeerName: fmt.Sprintf("lan%d", i+1), PeerBridge: "lan0", MTU: 1500}))
		require.NoError(t, netdev.EnsureAddr(m.ns, "eth0", netip.MustParsePrefix(m.addr+"/24")))

		l, err := sdk.Launch(sdk.LaunchOptions{Path: ipTool, Args: []string{"netns", "exec", m.ns, bin}})
		require.NoError(t, err)
		t.Cleanup(l.Kill)
		_, version, err := l.Identify(ctx, pluginName, pb.Kind_KIND_NETWORK)
		require.NoError(t, err)
		require.NoError(t, l.Configure(ctx, fmt.Appendf(nil, `{"mode":"host","state_dir":%q}`, t.TempDir()), version))
		caps, err := l.Capabilities(ctx)
		require.NoError(t, err)
		require.NotContains(t, caps, "network.netns")
		plugins[i] = l.Network

		_, err = l.Network.SetupNode(ctx, &pb.SetupNodeRequest{Node: m.node})
		requireCode(t, err, codes.InvalidArgument, "underlay_address")
		resp, err := l.Network.SetupNode(ctx, &pb.SetupNodeRequest{Node: m.node, UnderlayAddress: m.addr, Peers: []string{m.peer}})
		require.NoError(t, err)
		require.Empty(t, resp.GetNetns(), "host mode uses the plugin's own namespace")
		flood, err := netdev.Flood(m.ns, vxlanName)
		require.NoError(t, err)
		require.Equal(t, []netip.Addr{netip.MustParseAddr(m.peer)}, flood)
	}
	_, err = plugins[0].SetupNode(ctx, &pb.SetupNodeRequest{Node: "other", UnderlayAddress: "10.240.0.1"})
	requireCode(t, err, codes.FailedPrecondition, "one node")

	resp, err := plugins[0].AttachVM(ctx, &pb.AttachVMRequest{Vm: "db-1", Node: "m1"})
	require.NoError(t, err)
	at := resp.GetAttachment()
	require.Empty(t, at.GetNetns())
	tap, ok, err := netdev.LinkInfo(machines[0].ns, at.GetTap())
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, bridgeName, tap.Master)

	vm := newFakeVM(t, prefix+"fakevm", at)
	vm.plugInto(machines[0].ns)
	// The second machine's bridge stands in for a client there.
	require.NoError(t, netdev.EnsureAddr(machines[1].ns, bridgeName, netip.MustParsePrefix(at.GetGateway()+"/24")))
	dial(t, machines[1].ns, at).roundTrip("across machines")
}
