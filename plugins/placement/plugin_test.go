package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
	"github.com/vertigo-autoscaler/vertigo/sdk/schema"
	"github.com/vertigo-autoscaler/vertigo/sdk/sdktest"
)

const gib = uint64(1) << 30

func size(vcpus int64, gibs uint64) *pb.Size {
	return &pb.Size{VcpuMilli: vcpus * 1000, MemoryBytes: gibs * gib}
}

func connect(t *testing.T) pb.PlacementClient {
	t.Helper()
	return connectClient(t, hclog.NewNullLogger()).Placement
}

func connectClient(t *testing.T, log hclog.Logger) *sdk.Client {
	t.Helper()
	return sdktest.Connect(t, newPlugin(log))
}

func nodeUpsert(name string, capacity *pb.Size, watermark float64) *pb.PlacementEvent {
	return &pb.PlacementEvent{Event: &pb.PlacementEvent_NodeUpsert{NodeUpsert: &pb.NodeSpec{Name: name, Capacity: capacity, Watermark: watermark}}}
}

func vmUpsert(vm, node string, reserved *pb.Size) *pb.PlacementEvent {
	return &pb.PlacementEvent{Event: &pb.PlacementEvent_VmUpsert{VmUpsert: &pb.VMPlacement{Vm: vm, Node: node, Reserved: reserved, Unit: size(1, 1)}}}
}

func apply(t *testing.T, c pb.PlacementClient, events ...*pb.PlacementEvent) []*pb.EventError {
	t.Helper()
	resp, err := c.Apply(context.Background(), &pb.ApplyRequest{Events: events})
	require.NoError(t, err)
	return resp.GetErrors()
}

func snapshot(t *testing.T, c pb.PlacementClient) *pb.SnapshotResponse {
	t.Helper()
	s, err := c.Snapshot(context.Background(), &pb.SnapshotRequest{})
	require.NoError(t, err)
	return s
}

func requireProtoEqual(t *testing.T, want, got proto.Message, msgAndArgs ...any) {
	t.Helper()
	require.Truef(t, proto.Equal(want, got), "want %v\n got %v\n%v", want, got, fmt.Sprint(msgAndArgs...))
}

func TestIdentityAndCapabilities(t *testing.T) {
	c := connectClient(t, hclog.NewNullLogger())
	ctx := context.Background()
	info, version, err := c.Identify(ctx, "vertigo-placement", pb.Kind_KIND_PLACEMENT)
	require.NoError(t, err)
	require.Equal(t, "0.1.0", info.GetPluginVersion())
	require.Equal(t, uint32(1), version)
	caps, err := c.Capabilities(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string]bool{"placement.partial_grants": true, "placement.migration_plans": true, "placement.dirty_rate": true}, caps)
	require.NoError(t, c.Healthy(ctx))
}

func TestConfigSchemaDefaults(t *testing.T) {
	c := connectClient(t, hclog.NewNullLogger())
	ctx := context.Background()
	resp, err := c.Base.ConfigSchema(ctx, &pb.ConfigSchemaRequest{})
	require.NoError(t, err)
	for _, a := range resp.GetSchema().GetAttributes() {
		require.NotEmpty(t, a.GetDescription(), a.GetName())
		require.False(t, a.GetRequired(), a.GetName())
	}
	defaults, err := schema.Defaults(resp.GetSchema())
	require.NoError(t, err)
	require.JSONEq(t, `{"strategy":"spread","dirty_rate_weight":10000000000,"max_migrations_per_node":4,"target_headroom":0}`, string(defaults))
	require.Equal(t, []string{"spread", "pack"}, resp.GetSchema().GetAttributes()[0].GetOneOf())

	require.NoError(t, c.Configure(ctx, defaults, 1))
	require.NoError(t, c.Configure(ctx, defaults, 1), "SetConfig is idempotent")
}

func TestSetConfigNamesEveryRejectedAttribute(t *testing.T) {
	c := connectClient(t, hclog.NewNullLogger())
	ctx := context.Background()
	err := c.Configure(ctx, []byte(`{"strategy":"diagonal","dirty_rate_weight":-1000000000,"max_migrations_per_node":2.5,"target_headroom":1}`), 1)
	require.Equal(t, sdk.FieldErrors{
		{Field: "strategy", Message: `must be "spread" or "pack", got "diagonal"`},
		{Field: "dirty_rate_weight", Message: "must be >= 0, got -1s"},
		{Field: "max_migrations_per_node", Message: "must be a whole number from 1 to 1000, got 2.5"},
		{Field: "target_headroom", Message: "must be in [0, 1), got 1"},
	}, err)

	for config, want := range map[string]sdk.FieldErrors{
		`{"max_migrations_per_node":0}`:    {{Field: "max_migrations_per_node", Message: "must be a whole number from 1 to 1000, got 0"}},
		`{"max_migrations_per_node":1e30}`: {{Field: "max_migrations_per_node", Message: "must be a whole number from 1 to 1000, got 1e+30"}},
		`{"target_headroom":-0.1}`:         {{Field: "target_headroom", Message: "must be in [0, 1), got -0.1"}},
	} {
		require.Equal(t, want, c.Configure(ctx, []byte(config), 1), config)
	}

	require.ErrorContains(t, c.Configure(ctx, []byte(`{"stratgey":"pack"}`), 1), `unknown field "stratgey"`)
	require.ErrorContains(t, c.Configure(ctx, []byte(`{}`), 2), "api_version: 2 is not one plugin \"vertigo-placement\" speaks")
}

// placeOnTwoNodes returns where a small VM goes between a roomy and a
// nearly full node.
func placeOnTwoNodes(t *testing.T, c *sdk.Client) string {
	t.Helper()
	require.Empty(t, apply(t, c.Placement, nodeUpsert("roomy", size(64, 256), 0.9), nodeUpsert("snug", size(8, 32), 0.9), vmUpsert("x", "snug", size(4, 16))))
	resp, err := c.Placement.Place(context.Background(), &pb.PlaceRequest{Vm: "new", Size: size(1, 1), Unit: size(1, 1)})
	require.NoError(t, err)
	return resp.GetNode()
}

func TestSetConfigChoosesTheStrategy(t *testing.T) {
	ctx := context.Background()
	c := connectClient(t, hclog.NewNullLogger())
	require.Equal(t, "roomy", placeOnTwoNodes(t, c), "spread by default")

	c = connectClient(t, hclog.NewNullLogger())
	require.NoError(t, c.Configure(ctx, []byte(`{"strategy":"pack"}`), 1))
	require.Error(t, c.Configure(ctx, []byte(`{"strategy":"spread","target_headroom":2}`), 1))
	require.Equal(t, "snug", placeOnTwoNodes(t, c), "a rejected config leaves the last good one in place")
}

func TestApplyReportsRefusedEventsByIndex(t *testing.T) {
	c := connect(t)
	errs := apply(t, c,
		nodeUpsert("n1", size(8, 32), 0.9),
		vmUpsert("a", "n1", size(6, 8)),
		nodeUpsert("n1", size(4, 32), 0.9),
		&pb.PlacementEvent{Event: &pb.PlacementEvent_VmUpsert{VmUpsert: &pb.VMPlacement{Vm: "b", Node: "n1", Reserved: size(1, 1), Unit: &pb.Size{MemoryBytes: gib}}}},
		vmUpsert("c", "n9", size(1, 1)),
		&pb.PlacementEvent{},
		&pb.PlacementEvent{Event: &pb.PlacementEvent_NodeRemove{}},
		nodeUpsert("n2", nil, 0.9),
		&pb.PlacementEvent{Event: &pb.PlacementEvent_NodeRemove{NodeRemove: "n1"}},
		vmUpsert("d", "n1", size(2, 2)),
	)
	want := []*pb.EventError{
		{Index: 2, Message: "node n1 has 6 vCPU reserved: cannot lower capacity to 4 vCPU; migrate VMs first"},
		{Index: 3, Message: "events[3].vm_upsert.unit.vcpu_milli: must be > 0"},
		{Index: 4, Message: "vm c: unknown node n9"},
		{Index: 5, Message: "events[5]: empty event: set one of node_upsert, node_remove, vm_upsert, vm_remove"},
		{Index: 6, Message: "events[6].node_remove: must not be empty"},
		{Index: 7, Message: "events[7].node_upsert.capacity.vcpu_milli: must be > 0"},
		{Index: 8, Message: "node n1 still holds VMs a: migrate or remove them first"},
	}
	require.Len(t, errs, len(want))
	for i := range want {
		requireProtoEqual(t, want[i], errs[i])
	}
	requireProtoEqual(t, &pb.SnapshotResponse{
		Nodes: []*pb.NodeAccount{{Spec: &pb.NodeSpec{Name: "n1", Capacity: size(8, 32), Watermark: 0.9}, Reserved: size(8, 10), Vms: []string{"a", "d"}}},
		Vms: []*pb.VMPlacement{
			{Vm: "a", Node: "n1", Reserved: size(6, 8), Unit: size(1, 1)},
			{Vm: "d", Node: "n1", Reserved: size(2, 2), Unit: size(1, 1)},
		},
	}, snapshot(t, c), "the events around the refused ones applied")
}

func TestResetForgetsTheFleet(t *testing.T) {
	c := connect(t)
	require.Empty(t, apply(t, c, nodeUpsert("n1", size(8, 32), 0.9), vmUpsert("a", "n1", size(1, 1))))
	_, err := c.Reset(context.Background(), &pb.ResetRequest{})
	require.NoError(t, err)
	requireProtoEqual(t, &pb.SnapshotResponse{}, snapshot(t, c))
}

func requireInvalidArgument(t *testing.T, err error, message string) {
	t.Helper()
	st, ok := status.FromError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, codes.InvalidArgument, st.Code())
	require.Equal(t, message, st.Message())
}

func TestGrowAndPlaceNameMalformedFields(t *testing.T) {
	c := connect(t)
	ctx := context.Background()
	require.Empty(t, apply(t, c, nodeUpsert("n1", size(8, 32), 0.9), vmUpsert("a", "n1", size(1, 1))))

	_, err := c.Grow(ctx, &pb.GrowRequest{Asks: []*pb.GrowthAsk{{Vm: "a", Want: size(2, 2)}, {Vm: "a", Want: &pb.Size{VcpuMilli: -1}}}})
	requireInvalidArgument(t, err, "asks[1].want.vcpu_milli: must be >= 0")
	_, err = c.Grow(ctx, &pb.GrowRequest{Asks: []*pb.GrowthAsk{{Want: size(2, 2)}}})
	requireInvalidArgument(t, err, "asks[0].vm: must not be empty")
	requireProtoEqual(t, size(1, 1), snapshot(t, c).GetVms()[0].GetReserved(), "a batch with a malformed ask grants nothing")

	_, err = c.Place(ctx, &pb.PlaceRequest{Vm: "b", Size: size(1, 1)})
	requireInvalidArgument(t, err, "unit.vcpu_milli: must be > 0")
	_, err = c.Place(ctx, &pb.PlaceRequest{Size: size(1, 1), Unit: size(1, 1)})
	requireInvalidArgument(t, err, "vm: must not be empty")
	_, err = c.Place(ctx, &pb.PlaceRequest{Vm: "b", Size: &pb.Size{VcpuMilli: -5}, Unit: size(1, 1)})
	requireInvalidArgument(t, err, "size.vcpu_milli: must be >= 0")
}

func TestGrowThroughGRPC(t *testing.T) {
	c := connect(t)
	ctx := context.Background()
	require.Empty(t, apply(t, c, nodeUpsert("n1", size(8, 32), 0.9), vmUpsert("a", "n1", size(2, 4)), vmUpsert("b", "n1", size(4, 4))))
	resp, err := c.Grow(ctx, &pb.GrowRequest{Asks: []*pb.GrowthAsk{{Vm: "a", Want: size(6, 8)}, {Vm: "ghost", Want: size(1, 1)}}})
	require.NoError(t, err)
	require.Len(t, resp.GetGrants(), 2)
	requireProtoEqual(t, &pb.Grant{Vm: "a", Granted: size(4, 8), Partial: true, Reason: "node n1 is short of vCPU (2 vCPU free, unit 1 vCPU)"}, resp.GetGrants()[0])
	requireProtoEqual(t, &pb.Grant{Vm: "ghost", Granted: &pb.Size{}, Partial: true, Reason: "unknown vm ghost: place it before growing it"}, resp.GetGrants()[1])
	requireProtoEqual(t, size(8, 12), snapshot(t, c).GetNodes()[0].GetReserved())
}

// syncBuffer lets the test read what the plugin logs from another goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestPlanMigrationsThroughGRPC(t *testing.T) {
	var logs syncBuffer
	c := connectClient(t, hclog.New(&hclog.LoggerOptions{Output: &logs, JSONFormat: true}))
	ctx := context.Background()
	require.NoError(t, c.Configure(ctx, []byte(`{"max_migrations_per_node":1}`), 1))
	// hot (watermark 0.5 = 5/5) must shed two 3/3 VMs but may give one.
	require.Empty(t, apply(t, c.Placement,
		nodeUpsert("hot", size(10, 10), 0.5), nodeUpsert("cool", size(100, 100), 0.9),
		vmUpsert("a", "hot", size(3, 3)), vmUpsert("b", "hot", size(3, 3)), vmUpsert("c", "hot", size(3, 3))))
	before := snapshot(t, c.Placement)

	resp, err := c.Placement.PlanMigrations(ctx, &pb.PlanMigrationsRequest{})
	require.NoError(t, err)
	require.Len(t, resp.GetMigrations(), 1)
	m := resp.GetMigrations()[0]
	require.Equal(t, []string{"a", "hot", "cool"}, []string{m.GetVm(), m.GetFrom(), m.GetTo()})
	require.Contains(t, m.GetReason(), "node hot is above its watermark")
	requireProtoEqual(t, before, snapshot(t, c.Placement), "planning changes nothing")

	var line map[string]any
	require.NoError(t, json.Unmarshal([]byte(logs.String()), &line), logs.String())
	require.Equal(t, "node stays above its watermark after the planned migrations", line["@message"])
	require.Equal(t, "hot", line["node"])
	require.Contains(t, line["reason"], "the limit of migrations per node (1) is reached")

	// A node that stays stuck is said once; its way out is said too.
	_, err = c.Placement.PlanMigrations(ctx, &pb.PlanMigrationsRequest{})
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(logs.String(), "\n"), logs.String())
	require.Empty(t, apply(t, c.Placement, vmUpsert("b", "hot", size(1, 1)), vmUpsert("c", "hot", size(1, 1))))
	_, err = c.Placement.PlanMigrations(ctx, &pb.PlanMigrationsRequest{})
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	require.Len(t, lines, 2, logs.String())
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &line))
	require.Equal(t, "node no longer stuck above its watermark", line["@message"])
	require.Equal(t, "hot", line["node"])
}

// TestConcurrentCallsKeepTheInvariants runs every RPC from several
// goroutines at once; with -race it proves the state is guarded.
func TestConcurrentCallsKeepTheInvariants(t *testing.T) {
	c := connect(t)
	ctx := context.Background()
	for i := range 4 {
		require.Empty(t, apply(t, c, nodeUpsert(fmt.Sprintf("n%d", i), size(16, 64), 0.8)))
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				vm := fmt.Sprintf("w%d-vm%d", w, i%10)
				calls := []func() error{
					func() error {
						_, err := c.Place(ctx, &pb.PlaceRequest{Vm: vm, Size: size(1, 2), Unit: size(1, 1)})
						return err
					},
					func() error {
						_, err := c.Grow(ctx, &pb.GrowRequest{Asks: []*pb.GrowthAsk{{Vm: vm, Want: size(3, 6)}}})
						return err
					},
					func() error {
						_, err := c.PlanMigrations(ctx, &pb.PlanMigrationsRequest{})
						return err
					},
					func() error {
						_, err := c.Apply(ctx, &pb.ApplyRequest{Events: []*pb.PlacementEvent{{Event: &pb.PlacementEvent_VmRemove{VmRemove: vm}}}})
						return err
					},
					func() error {
						s, err := c.Snapshot(ctx, &pb.SnapshotRequest{})
						if err == nil {
							err = checkSnapshot(s)
						}
						return err
					},
				}
				if err := calls[(i+w)%len(calls)](); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, checkSnapshot(snapshot(t, c)))
}
