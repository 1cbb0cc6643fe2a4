package daemon

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/model"
	"github.com/vertigo-autoscaler/vertigo/host/store"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
	"github.com/vertigo-autoscaler/vertigo/sdk/sdktest"
)

// ports is a network plugin that only keeps a list of ports, to see what
// the host asks of it.
type ports struct {
	pb.UnimplementedNetworkServer
	mu    sync.Mutex
	ports []*pb.Attachment
	calls []string
}

func (*ports) Info() sdk.Info {
	return sdk.Info{Name: "ports", Kind: pb.Kind_KIND_NETWORK, Version: "0", APIVersions: sdk.APIVersions}
}
func (*ports) ConfigSchema() *pb.ConfigSchema                  { return &pb.ConfigSchema{} }
func (*ports) SetConfig(context.Context, []byte, uint32) error { return nil }
func (*ports) Capabilities(context.Context) []string           { return nil }
func (*ports) Health(context.Context) error                    { return nil }

func (p *ports) ListAttachments(context.Context, *pb.ListAttachmentsRequest) (*pb.ListAttachmentsResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return &pb.ListAttachmentsResponse{Attachments: p.ports}, nil
}

func (p *ports) remove(vm, node, call string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, call+" "+vm+"@"+node)
	kept := p.ports[:0]
	for _, a := range p.ports {
		if a.GetVm() != vm || a.GetNode() != node {
			kept = append(kept, a)
		}
	}
	p.ports = kept
}

func (p *ports) DetachVM(_ context.Context, r *pb.DetachVMRequest) (*pb.DetachVMResponse, error) {
	p.remove(r.GetVm(), r.GetNode(), "detach")
	return &pb.DetachVMResponse{}, nil
}

func (p *ports) CompleteMigration(_ context.Context, r *pb.CompleteMigrationRequest) (*pb.CompleteMigrationResponse, error) {
	p.remove(r.GetVm(), r.GetSourceNode(), "complete")
	return &pb.CompleteMigrationResponse{}, nil
}

func (p *ports) Announce(_ context.Context, r *pb.AnnounceRequest) (*pb.AnnounceResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, "announce "+r.GetVm()+"@"+r.GetNode())
	return &pb.AnnounceResponse{}, nil
}

// A host that died mid-migration left the VM a port on both nodes, and a VM
// removed while no host ran left its port: at start the host keeps exactly
// one port per VM, on the node it runs on, and records its address.
func TestReconcilePortsKeepsOnePortPerVMWhereItRuns(t *testing.T) {
	net := &ports{ports: []*pb.Attachment{
		{Vm: "pg-1", Node: "node-a", IpCidr: "10.77.0.2/24"},
		{Vm: "pg-1", Node: "node-b", IpCidr: "10.77.0.2/24"},
		{Vm: "pg-2", Node: "node-a", IpCidr: "10.77.0.3/24"},
		{Vm: "gone", Node: "node-b", IpCidr: "10.77.0.4/24"},
	}}
	h := &Host{store: store.NewMemory(), log: hclog.NewNullLogger(),
		net: &networkClient{direct("ports", sdktest.Connect(t, net), time.Second)}}
	ctx := context.Background()
	for _, vm := range []model.VM{{Name: "pg-1", Node: "node-b"}, {Name: "pg-2", Node: "node-a", Address: "10.77.0.3/24"}} {
		_, err := h.store.PutVM(ctx, vm)
		require.NoError(t, err)
	}
	vms, err := h.store.ListVMs(ctx)
	require.NoError(t, err)

	require.NoError(t, h.reconcilePorts(ctx, vms))
	left, _ := net.ListAttachments(ctx, nil)
	var where []string
	for _, a := range left.GetAttachments() {
		where = append(where, a.GetVm()+"@"+a.GetNode())
	}
	sort.Strings(where)
	require.Equal(t, []string{"pg-1@node-b", "pg-2@node-a"}, where)
	require.ElementsMatch(t, []string{"complete pg-1@node-a", "announce pg-1@node-b", "detach gone@node-b"}, net.calls)
	pg1, err := h.store.GetVM(ctx, "pg-1")
	require.NoError(t, err)
	require.Equal(t, "10.77.0.2/24", pg1.Address, "the address is recorded from the port")
}
