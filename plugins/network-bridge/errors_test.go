package main

import (
	"context"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

func requireCode(t *testing.T, err error, code codes.Code, contains string) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, code, status.Code(err), err.Error())
	require.Contains(t, status.Convert(err).Message(), contains)
}

func TestRefusalsAndAddressLifecycle(t *testing.T) {
	// A /30 holds the gateway and exactly one VM; no client namespace.
	f := newFleet(t, `,"subnet":"10.233.0.0/30","client_namespace":""`)
	ctx := context.Background()

	_, err := f.net.AttachVM(ctx, &pb.AttachVMRequest{Vm: "db-1", Node: "a"})
	requireCode(t, err, codes.FailedPrecondition, `node "a" is not set up`)
	_, err = f.net.SetupNode(ctx, &pb.SetupNodeRequest{Node: "../etc"})
	requireCode(t, err, codes.InvalidArgument, "node:")
	_, err = f.net.SetupNode(ctx, &pb.SetupNodeRequest{Node: underlayName})
	requireCode(t, err, codes.InvalidArgument, "the plugin's own namespaces")
	f.setup("a", "b")
	require.Empty(t, namespaces(t, f.prefix+"client"), "client_namespace \"\" makes none")

	_, err = f.net.AttachVM(ctx, &pb.AttachVMRequest{Node: "a"})
	requireCode(t, err, codes.InvalidArgument, "vm: must not be empty")
	at := f.attach("db-1", "a")
	require.Equal(t, "10.233.0.2/30", at.GetIpCidr())
	_, err = f.net.AttachVM(ctx, &pb.AttachVMRequest{Vm: "db-2", Node: "a"})
	requireCode(t, err, codes.ResourceExhausted, "subnet: 10.233.0.0/30: no free address left")
	_, err = f.net.AttachVM(ctx, &pb.AttachVMRequest{Vm: "db-1", Node: "b"})
	requireCode(t, err, codes.FailedPrecondition, "PrepareMigration")

	_, err = f.net.PrepareMigration(ctx, &pb.PrepareMigrationRequest{Vm: "db-1", TargetNode: "a"})
	requireCode(t, err, codes.InvalidArgument, "target_node")
	_, err = f.net.PrepareMigration(ctx, &pb.PrepareMigrationRequest{Vm: "db-1", TargetNode: "c"})
	requireCode(t, err, codes.FailedPrecondition, `node "c" is not set up`)
	_, err = f.net.Announce(ctx, &pb.AnnounceRequest{Vm: "nope", Node: "a"})
	requireCode(t, err, codes.NotFound, `"nope"`)
	_, err = f.net.Announce(ctx, &pb.AnnounceRequest{Vm: "db-1", Node: "b"})
	requireCode(t, err, codes.FailedPrecondition, `no port on node "b"`)

	// A failed migration keeps the source port and removes the target's.
	_, err = f.net.PrepareMigration(ctx, &pb.PrepareMigrationRequest{Vm: "db-1", TargetNode: "b"})
	require.NoError(t, err)
	f.link(f.prefix+"b", at.GetTap())
	_, err = f.net.CompleteMigration(ctx, &pb.CompleteMigrationRequest{Vm: "db-1", SourceNode: "b", TargetNode: "a", Succeeded: true})
	requireCode(t, err, codes.FailedPrecondition, "not migrating")
	for range 2 { // and says so again when asked again
		done, err := f.net.CompleteMigration(ctx, &pb.CompleteMigrationRequest{Vm: "db-1", SourceNode: "a", TargetNode: "b"})
		require.NoError(t, err)
		require.Equal(t, at.String(), done.GetAttachment().String())
	}
	f.noLink(f.prefix+"b", at.GetTap())
	f.link(f.prefix+"a", at.GetTap())

	// Detaching frees the address for the next VM.
	_, err = f.net.DetachVM(ctx, &pb.DetachVMRequest{Vm: "db-1", Node: "a"})
	require.NoError(t, err)
	f.noLink(f.prefix+"a", at.GetTap())
	require.Equal(t, "10.233.0.2/30", f.attach("db-2", "b").GetIpCidr())
	// ...and a restart does not hand it out twice.
	f.restart()
	_, err = f.net.AttachVM(ctx, &pb.AttachVMRequest{Vm: "db-3", Node: "a"})
	requireCode(t, err, codes.ResourceExhausted, "no free address")
}

func TestCallsBeforeSetConfigAreRefused(t *testing.T) {
	p := newPlugin(hclog.NewNullLogger())
	_, err := p.AttachVM(context.Background(), &pb.AttachVMRequest{Vm: "db-1", Node: "a"})
	requireCode(t, err, codes.FailedPrecondition, "SetConfig")
	require.ErrorContains(t, p.Health(context.Background()), "SetConfig")
}
