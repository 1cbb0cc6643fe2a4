package conformance

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// netFleet launches fake network plugin processes of one variant over one
// fakeNet, as the CLI launches a plugin binary again and again.
type netFleet struct {
	t       *testing.T
	n       *fakeNet
	caps    []string
	variant func(*fakeNetwork) sdk.Base
	procs   []*fakeNetwork
	current *sdk.Client
}

func newNetFleet(t *testing.T, caps []string, variant func(*fakeNetwork) sdk.Base) *netFleet {
	return &netFleet{t: t, n: newFakeNet(), caps: caps, variant: variant}
}

func correctNet(f *fakeNetwork) sdk.Base { return f }

func (f *netFleet) launch() *sdk.Client {
	p := &fakeNetwork{n: f.n, caps: f.caps, allocate: lowestFree}
	f.procs = append(f.procs, p)
	f.current = connect(f.t, f.variant(p))
	return f.current
}

// options let the suite kill and relaunch the fake; a killed process's
// connection is closed, its nodes and ports stay on the fakeNet.
func (f *netFleet) options() Options {
	return Options{
		Relaunch: func(context.Context) (*sdk.Client, error) { return f.launch(), nil },
		Kill:     func() error { return f.current.Conn.Close() },
	}
}

func (f *netFleet) run(ctx context.Context, o Options) (Result, report) {
	f.t.Helper()
	return runWith(f.t, ctx, pb.Kind_KIND_NETWORK, f.launch(), o)
}

func TestFakeNetworkPassesTheSuite(t *testing.T) {
	fleet := newNetFleet(t, allNetworkCaps, correctNet)
	res, r := fleet.run(t.Context(), fleet.options())
	require.Empty(t, r.with("FAIL"), r.reasons)
	require.Equal(t, Result{Passed: len(specNames(pb.Kind_KIND_NETWORK))}, res)
	require.Empty(t, fleet.n.ports(), "the suite left VMs attached")
	require.Len(t, fleet.procs, 2, "one launch, and one relaunch for the restart spec")
	require.ElementsMatch(t, fakeNodes, slices.Collect(maps.Keys(fleet.n.nodes)))
}

func TestTestWithRunsTheNetworkSuiteAsSubtests(t *testing.T) {
	fleet := newNetFleet(t, allNetworkCaps, correctNet)
	TestWith(t, pb.Kind_KIND_NETWORK, fleet.launch(), fleet.options())
	require.Empty(t, fleet.n.ports())
}

// Broken variants of the fake network plugin, each with one bug the suite
// must catch.

// countingAllocator gives a new VM the address after the gateway plus the
// number of VMs attached: after a detach that was not the last, it hands
// out an address a VM still holds.
func countingAllocator(n *fakeNet, subnet netip.Prefix) (netip.Addr, bool) {
	a := gateway(subnet)
	for range len(n.nics) + 1 {
		a = a.Next()
	}
	return a, a != lastAddr(subnet)
}

// renumbersOnMigration gives a VM a new address when it moves.
type renumbersOnMigration struct{ *fakeNetwork }

func (b renumbersOnMigration) PrepareMigration(ctx context.Context, req *pb.PrepareMigrationRequest) (*pb.PrepareMigrationResponse, error) {
	resp, err := b.fakeNetwork.PrepareMigration(ctx, req)
	if err != nil {
		return nil, err
	}
	subnet, err := b.configured()
	if err != nil {
		return nil, err
	}
	b.n.mu.Lock()
	defer b.n.mu.Unlock()
	if a, ok := lowestFree(b.n, subnet); ok {
		b.n.nics[req.GetVm()].addr = a
		resp.Attachment.IpCidr = netip.PrefixFrom(a, subnet.Bits()).String()
	}
	return resp, nil
}

// leaksAddresses removes a VM's last tap but keeps its address.
type leaksAddresses struct{ *fakeNetwork }

func (b leaksAddresses) DetachVM(_ context.Context, req *pb.DetachVMRequest) (*pb.DetachVMResponse, error) {
	b.n.mu.Lock()
	defer b.n.mu.Unlock()
	if nic, ok := b.n.nics[req.GetVm()]; ok {
		delete(nic.ports, req.GetNode())
	}
	return &pb.DetachVMResponse{}, nil
}

// forgetsOnRestart keeps its attachments in memory only: a new process
// starts with none, though the old one's taps are still there.
func forgetsOnRestart(f *fakeNetwork) sdk.Base {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	clear(f.n.nics)
	return f
}

// newBridgeEveryCall names a new bridge on every SetupNode.
type newBridgeEveryCall struct {
	*fakeNetwork
	calls *int
}

func (b newBridgeEveryCall) SetupNode(ctx context.Context, req *pb.SetupNodeRequest) (*pb.SetupNodeResponse, error) {
	resp, err := b.fakeNetwork.SetupNode(ctx, req)
	if err != nil {
		return nil, err
	}
	b.n.mu.Lock()
	defer b.n.mu.Unlock()
	*b.calls++
	resp.Bridge = fmt.Sprintf("br%d", *b.calls)
	return resp, nil
}

// setsNodesUpOnDemand attaches to any node, set up or not.
type setsNodesUpOnDemand struct{ *fakeNetwork }

func (b setsNodesUpOnDemand) AttachVM(ctx context.Context, req *pb.AttachVMRequest) (*pb.AttachVMResponse, error) {
	b.n.mu.Lock()
	b.n.nodes[req.GetNode()] = true
	b.n.mu.Unlock()
	return b.fakeNetwork.AttachVM(ctx, req)
}

func TestBrokenNetworksFailTheRightSpecs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		variant func(*fakeNetwork) sdk.Base
		failed  map[string]string // spec -> part of its reason
	}{
		{
			name:    "an address handed out twice",
			variant: func(f *fakeNetwork) sdk.Base { f.allocate = countingAllocator; return f },
			failed: map[string]string{
				"network/detach_frees_address": "have the same address 10.99.0.62: an address was handed out twice",
			},
		},
		{
			name:    "the address changes on migration",
			variant: func(f *fakeNetwork) sdk.Base { return renumbersOnMigration{f} },
			failed: map[string]string{
				"network/migrate":        "has address 10.99.0.3/26 on node-b, 10.99.0.2/26 on node-a: a VM keeps its address across migration",
				"network/migrate_failed": "a VM keeps its address across migration",
				"network/announce":       "a VM keeps its address across migration",
			},
		},
		{
			name:    "detach does not free the address",
			variant: func(f *fakeNetwork) sdk.Base { return leaksAddresses{f} },
			failed: map[string]string{
				"network/detach_frees_address": "the pool full, DetachVM conf-",
			},
		},
		{
			name:    "attachments forgotten by a new process",
			variant: forgetsOnRestart,
			failed: map[string]string{
				"network/restart_keeps_attachments": "after the plugin restarted: ListAttachments lists none, want conf-",
			},
		},
		{
			name: "SetupNode not idempotent",
			variant: func(f *fakeNetwork) sdk.Base {
				return newBridgeEveryCall{f, new(int)}
			},
			failed: map[string]string{
				"network/setup_node":                "SetupNode must be idempotent",
				"network/restart_keeps_attachments": "before the plugin restarted",
			},
		},
		{
			name:    "nodes set up on demand",
			variant: func(f *fakeNetwork) sdk.Base { return setsNodesUpOnDemand{f} },
			failed: map[string]string{
				"network/attach_unknown_node": "never set up, succeeded: want FailedPrecondition or NotFound",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fleet := newNetFleet(t, allNetworkCaps, tc.variant)
			res, r := fleet.run(t.Context(), fleet.options())
			want := slices.Sorted(maps.Keys(tc.failed))
			require.Equal(t, want, r.with("FAIL"), r.reasons)
			require.Equal(t, Result{Passed: len(specNames(pb.Kind_KIND_NETWORK)) - len(want), Failed: len(want)}, res)
			for name, reason := range tc.failed {
				require.Contains(t, r.reasons[name], reason, name)
			}
			require.Empty(t, fleet.n.ports(), "cleanup must detach the VMs of failed specs too")
		})
	}
}

func TestNetworkSpecsSkipWithTheReason(t *testing.T) {
	for _, tc := range []struct {
		name    string
		caps    []string
		opts    Options
		skipped map[string]string
	}{
		{
			name: "no capabilities, no relaunch",
			skipped: map[string]string{
				"network/announce":                  "needs capability network.announce",
				"network/restart_keeps_attachments": "needs Options.Relaunch and Options.Kill",
			},
		},
		{
			name: "one node",
			caps: allNetworkCaps,
			opts: Options{Nodes: fakeNodes[:1]},
			skipped: map[string]string{
				"network/migrate":                   "needs two Options.Nodes to migrate between",
				"network/migrate_failed":            "needs two Options.Nodes to migrate between",
				"network/restart_keeps_attachments": "needs Options.Relaunch and Options.Kill",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fleet := newNetFleet(t, tc.caps, correctNet)
			res, r := fleet.run(t.Context(), tc.opts)
			require.Empty(t, r.with("FAIL"), r.reasons)
			require.Equal(t, Result{Passed: len(specNames(pb.Kind_KIND_NETWORK)) - len(tc.skipped), Skipped: len(tc.skipped)}, res)
			for name, reason := range tc.skipped {
				require.Equal(t, "SKIP", r.verdicts[name], name)
				require.Equal(t, reason, r.reasons[name], name)
			}
			require.Empty(t, fleet.n.ports())
		})
	}
}

func TestASubnetTooBigToFillFailsWithTheFix(t *testing.T) {
	fleet := newNetFleet(t, allNetworkCaps, correctNet)
	o := fleet.options()
	o.ConfigJSON = []byte(`{"subnet":"10.99.0.0/16"}`)
	_, r := fleet.run(t.Context(), o)
	require.Equal(t, []string{"network/detach_frees_address"}, r.with("FAIL"), r.reasons)
	require.Contains(t, r.reasons["network/detach_frees_address"], "subnet 10.99.0.0/16 holds more than 1024 addresses, too many to fill: run the suite with a subnet of at most /22")
	require.Empty(t, fleet.n.ports())
}

func TestAttachmentsAreChecked(t *testing.T) {
	s := &session{net: netRecord{nodes: map[string]*pb.SetupNodeResponse{"node-a": {Bridge: "br0", Netns: "ns-a"}}}}
	good := func() *pb.Attachment {
		return &pb.Attachment{Vm: "vm", Node: "node-a", Tap: "vt0001", Mac: "02:00:00:00:00:01", IpCidr: "10.9.0.5/24", Netns: "ns-a", Gateway: "10.9.0.1"}
	}
	require.NoError(t, s.checkAttachment(good(), "vm", "node-a"))
	for _, tc := range []struct {
		name   string
		mutate func(a *pb.Attachment)
		err    string
	}{
		{"another VM", func(a *pb.Attachment) { a.Vm = "other" }, `the attachment is for VM "other", want "vm"`},
		{"another namespace", func(a *pb.Attachment) { a.Netns = "" }, `vm on node-a: netns "", SetupNode node-a answered "ns-a"`},
		{"tap name too long", func(a *pb.Attachment) { a.Tap = "tap-for-a-very-long-vm" }, "longer than the 15 bytes"},
		{"tap name with a slash", func(a *pb.Attachment) { a.Tap = "vt/1" }, "a slash"},
		{"multicast MAC", func(a *pb.Attachment) { a.Mac = "01:00:5e:00:00:01" }, "a multicast MAC"},
		{"zero MAC", func(a *pb.Attachment) { a.Mac = "00:00:00:00:00:00" }, "all zero"},
		{"long MAC", func(a *pb.Attachment) { a.Mac = "02:00:00:00:00:00:00:01" }, "want an Ethernet (6-byte) MAC"},
		{"no prefix length", func(a *pb.Attachment) { a.IpCidr = "10.9.0.5" }, `ip_cidr "10.9.0.5"`},
		{"network address", func(a *pb.Attachment) { a.IpCidr = "10.9.0.0/24" }, "the network address of 10.9.0.0/24"},
		{"broadcast address", func(a *pb.Attachment) { a.IpCidr = "10.9.0.255/24" }, "the broadcast address of 10.9.0.0/24"},
		{"gateway elsewhere", func(a *pb.Attachment) { a.Gateway = "10.8.0.1" }, "gateway 10.8.0.1 is outside the VM's subnet 10.9.0.0/24"},
		{"gateway is the VM", func(a *pb.Attachment) { a.Gateway = "10.9.0.5" }, "gateway 10.9.0.5 is the VM's own address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := good()
			tc.mutate(a)
			require.ErrorContains(t, s.checkAttachment(a, "vm", "node-a"), tc.err)
		})
	}
}

func TestDistinctAttachments(t *testing.T) {
	vm := func(name, node, tap, mac, ip, gw string) *pb.Attachment {
		return &pb.Attachment{Vm: name, Node: node, Tap: tap, Mac: mac, IpCidr: ip, Gateway: gw}
	}
	a := vm("a", "node-a", "vt1", "02:00:00:00:00:01", "10.9.0.2/24", "10.9.0.1")
	require.NoError(t, distinct([]*pb.Attachment{a, vm("b", "node-b", "vt1", "02:00:00:00:00:02", "10.9.0.3/24", "10.9.0.1")}),
		"the same tap name on two nodes is two taps")
	for _, tc := range []struct {
		name  string
		other *pb.Attachment
		err   string
	}{
		{"same MAC, spelt otherwise", vm("b", "node-a", "vt2", "02-00-00-00-00-01", "10.9.0.3/24", ""), "a and b have the same MAC 02:00:00:00:00:01"},
		{"same address", vm("b", "node-b", "vt2", "02:00:00:00:00:02", "10.9.0.2/24", ""), "a and b have the same address 10.9.0.2"},
		{"same tap on a node", vm("b", "node-a", "vt1", "02:00:00:00:00:02", "10.9.0.3/24", ""), "a and b have the same tap vt1 on node-a"},
		{"another subnet", vm("b", "node-a", "vt2", "02:00:00:00:00:02", "10.9.1.3/24", ""), "a has 10.9.0.2/24, b has 10.9.1.3/24"},
		{"a VM at the gateway", vm("b", "node-a", "vt2", "02:00:00:00:00:02", "10.9.0.1/24", ""), "a's gateway 10.9.0.1 is b's address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorContains(t, distinct([]*pb.Attachment{a, tc.other}), tc.err)
		})
	}
}

// ignoresDetach answers DetachVM and keeps the VM attached.
type ignoresDetach struct{ *fakeNetwork }

func (ignoresDetach) DetachVM(context.Context, *pb.DetachVMRequest) (*pb.DetachVMResponse, error) {
	return &pb.DetachVMResponse{}, nil
}

func TestCleanupChecksTheVMsAreGone(t *testing.T) {
	fleet := newNetFleet(t, allNetworkCaps, func(f *fakeNetwork) sdk.Base { return ignoresDetach{f} })
	_, r := fleet.run(t.Context(), fleet.options())
	require.Equal(t, "FAIL", r.verdicts["network/attach"])
	require.Regexp(t, `^cleanup: ListAttachments still lists conf-\w+-attach@node-a after DetachVM$`, r.reasons["network/attach"])
	require.Contains(t, r.reasons["network/detach"], "after DetachVM: ListAttachments lists conf-")
	require.Equal(t, "PASS", r.verdicts["network/setup_node"], "a spec that attaches nothing has nothing to clean up")
}
