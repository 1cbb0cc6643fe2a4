package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

const capAnnounce = "network.announce"

const (
	// netStepTimeout bounds one network spec: filling a /24 creates and
	// removes a tap and rewrites the plugin's state some 250 times.
	netStepTimeout = 2 * time.Minute
	// manyVMs is enough VMs for an allocator that hands out an address or
	// a MAC twice to show it, spread over every node.
	manyVMs = 40
	// maxPool is the largest address pool the suite fills to prove that a
	// detach frees an address.
	maxPool = 1024
	// afterRestart is how many VMs a restarted plugin attaches, each of
	// which must get an address no VM attached before holds.
	afterRestart = 3
)

// Every network spec attaches its own VMs to nodes the group's before set
// up, and the group's after detaches every VM of the run the plugin lists
// or the suite may have attached, so a spec that fails leaves no port
// behind and no spec depends on another. Nodes stay set up: the protocol
// has no call to undo SetupNode.
var networkGroup = group{
	name: "network",
	before: func(ctx context.Context, s *session) error {
		if err := s.configure(ctx); err != nil {
			return err
		}
		return s.setupNodes(ctx)
	},
	after:   func(ctx context.Context, s *session) error { return s.detachAll(ctx) },
	timeout: netStepTimeout,
	specs: []spec{
		{name: "setup_node", check: checkSetupNode},
		{name: "attach", check: checkAttach},
		{name: "attach_many", check: checkAttachMany},
		{name: "attach_unknown_node", check: checkAttachUnknownNode},
		{name: "attach_empty_name", check: checkAttachEmptyName},
		{name: "detach", check: checkDetach},
		{name: "migrate", requires: twoNodes, check: checkMigrateKeepsAddress},
		{name: "migrate_failed", requires: twoNodes, check: checkFailedMigration},
		{name: "announce", requires: needs(capAnnounce), check: checkAnnounce},
		{name: "restart_keeps_attachments", requires: canRelaunch, check: checkRestartKeepsAttachments},
		// Last: it fills the address pool, and a plugin that leaks
		// addresses would starve every spec after it.
		{name: "detach_frees_address", check: checkDetachFreesAddress},
	},
}

func checkSetupNode(ctx context.Context, s *session) error {
	for _, node := range s.opts.Nodes {
		first := s.net.nodes[node]
		if first.GetBridge() == "" {
			return fmt.Errorf("SetupNode %s: empty bridge", node)
		}
		again, err := s.setupNode(ctx, node)
		if err != nil {
			return fmt.Errorf("again: %w", err)
		}
		if again.GetBridge() != first.GetBridge() || again.GetNetns() != first.GetNetns() {
			return fmt.Errorf("SetupNode %s answered bridge %q in netns %q, then bridge %q in netns %q: SetupNode must be idempotent",
				node, first.GetBridge(), first.GetNetns(), again.GetBridge(), again.GetNetns())
		}
	}
	return nil
}

func checkAttach(ctx context.Context, s *session) error {
	vm, node := s.vmName("attach"), s.opts.Nodes[0]
	a, err := s.attachVM(ctx, vm, node)
	if err != nil {
		return err
	}
	again, err := s.attachVM(ctx, vm, node)
	if err != nil {
		return fmt.Errorf("again: %w", err)
	}
	if !proto.Equal(again, a) {
		return fmt.Errorf("AttachVM %s again answered %v, the first call %v: AttachVM must return the existing attachment", vm, again, a)
	}
	return s.listsExactly(ctx, a)
}

func checkAttachMany(ctx context.Context, s *session) error {
	var atts []*pb.Attachment
	for i := range manyVMs {
		a, err := s.attachVM(ctx, s.vmName(fmt.Sprintf("many-%02d", i)), s.opts.Nodes[i%len(s.opts.Nodes)])
		if err != nil {
			return err
		}
		atts = append(atts, a)
	}
	if err := distinct(atts); err != nil {
		return err
	}
	return s.listsExactly(ctx, atts...)
}

func checkAttachUnknownNode(ctx context.Context, s *session) error {
	nowhere := s.vms.prefix + "-no-such-node"
	vm := s.vmName("nowhere")
	// Not recorded: a detach from a node never set up may rightly fail,
	// and cleanup detaches whatever the plugin lists anyway.
	_, err := s.c.Network.AttachVM(ctx, &pb.AttachVMRequest{Vm: vm, Node: nowhere})
	if err := refusedUnknownNode(err, "AttachVM "+vm, nowhere); err != nil {
		return err
	}
	a, err := s.attachVM(ctx, s.vmName("stays"), s.opts.Nodes[0])
	if err != nil {
		return err
	}
	_, err = s.c.Network.PrepareMigration(ctx, &pb.PrepareMigrationRequest{Vm: a.GetVm(), TargetNode: nowhere})
	if err := refusedUnknownNode(err, "PrepareMigration "+a.GetVm(), nowhere); err != nil {
		return err
	}
	return s.listsExactly(ctx, a)
}

// refusedUnknownNode checks that a call naming a node never set up failed
// with a code that says so.
func refusedUnknownNode(err error, call, node string) error {
	switch code := status.Code(err); {
	case err == nil:
		return fmt.Errorf("%s on node %q, never set up, succeeded: want FailedPrecondition or NotFound", call, node)
	case code != codes.FailedPrecondition && code != codes.NotFound:
		return fmt.Errorf("%s on node %q, never set up, failed with %s, want FailedPrecondition or NotFound: %w", call, node, code, err)
	}
	return nil
}

func checkAttachEmptyName(ctx context.Context, s *session) error {
	_, err := s.c.Network.AttachVM(ctx, &pb.AttachVMRequest{Node: s.opts.Nodes[0]})
	switch code := status.Code(err); {
	case err == nil:
		return errors.New("AttachVM with an empty vm succeeded: want InvalidArgument")
	case code != codes.InvalidArgument:
		return fmt.Errorf("AttachVM with an empty vm failed with %s, want InvalidArgument: %w", code, err)
	}
	all, err := s.listAttachments(ctx)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(all, func(a *pb.Attachment) bool { return a.GetVm() == "" }) {
		return errors.New("ListAttachments lists a VM with an empty name after AttachVM refused it")
	}
	return nil
}

func checkDetach(ctx context.Context, s *session) error {
	a, err := s.attachVM(ctx, s.vmName("detach"), s.opts.Nodes[0])
	if err != nil {
		return err
	}
	if err := s.detachVM(ctx, a.GetVm(), a.GetNode()); err != nil {
		return err
	}
	if err := s.listsExactly(ctx); err != nil {
		return fmt.Errorf("after DetachVM: %w", err)
	}
	if err := s.detachVM(ctx, a.GetVm(), a.GetNode()); err != nil {
		return fmt.Errorf("again (DetachVM must be idempotent): %w", err)
	}
	return nil
}

// checkMigrateKeepsAddress moves a VM to the second node and back, as the
// host does when it makes room and later returns.
func checkMigrateKeepsAddress(ctx context.Context, s *session) error {
	src, dst := s.opts.Nodes[0], s.opts.Nodes[1]
	a, err := s.attachVM(ctx, s.vmName("migrate"), src)
	if err != nil {
		return err
	}
	there, err := s.migrateNet(ctx, a, dst)
	if err != nil {
		return err
	}
	if err := s.listsExactly(ctx, there); err != nil {
		return fmt.Errorf("after migrating to %s: %w", dst, err)
	}
	back, err := s.migrateNet(ctx, there, src)
	if err != nil {
		return fmt.Errorf("back: %w", err)
	}
	if err := s.listsExactly(ctx, back); err != nil {
		return fmt.Errorf("after migrating back to %s: %w", src, err)
	}
	return nil
}

// migrateNet moves the VM of a to target as the host does around a
// hypervisor migration: PrepareMigration, then CompleteMigration with
// succeeded=true, each twice, as a host that retries after a crash would.
func (s *session) migrateNet(ctx context.Context, a *pb.Attachment, target string) (*pb.Attachment, error) {
	if _, err := s.prepareMigration(ctx, a, target); err != nil {
		return nil, err
	}
	done, err := s.completeMigration(ctx, a, target, true)
	if err != nil {
		return nil, err
	}
	again, err := s.completeMigration(ctx, a, target, true)
	if err != nil {
		return nil, fmt.Errorf("again: %w", err)
	}
	if !proto.Equal(again, done) {
		return nil, fmt.Errorf("CompleteMigration %s again answered %v, the first call %v: CompleteMigration must be idempotent", a.GetVm(), again, done)
	}
	return done, nil
}

func checkFailedMigration(ctx context.Context, s *session) error {
	a, err := s.attachVM(ctx, s.vmName("stay"), s.opts.Nodes[0])
	if err != nil {
		return err
	}
	if _, err := s.prepareMigration(ctx, a, s.opts.Nodes[1]); err != nil {
		return err
	}
	kept, err := s.completeMigration(ctx, a, s.opts.Nodes[1], false)
	if err != nil {
		return err
	}
	if !proto.Equal(kept, a) {
		return fmt.Errorf("CompleteMigration (succeeded=false) answered %v, want the attachment the VM had: %v", kept, a)
	}
	if err := s.listsExactly(ctx, a); err != nil {
		return fmt.Errorf("after a failed migration: %w", err)
	}
	return nil
}

func checkAnnounce(ctx context.Context, s *session) error {
	a, err := s.attachVM(ctx, s.vmName("announce"), s.opts.Nodes[0])
	if err != nil {
		return err
	}
	if err := s.announce(ctx, a); err != nil {
		return err
	}
	if len(s.opts.Nodes) < 2 {
		return nil
	}
	moved, err := s.migrateNet(ctx, a, s.opts.Nodes[1])
	if err != nil {
		return err
	}
	if err := s.announce(ctx, moved); err != nil {
		return fmt.Errorf("after migrating: %w", err)
	}
	if err := s.announce(ctx, moved); err != nil {
		return fmt.Errorf("again: %w", err)
	}
	return nil
}

// checkRestartKeepsAttachments restarts the plugin with VMs attached on
// every node, as a crash would, and checks the new process finds them as
// they were and hands out none of their addresses again.
func checkRestartKeepsAttachments(ctx context.Context, s *session) error {
	var kept []*pb.Attachment
	for i, node := range s.opts.Nodes {
		a, err := s.attachVM(ctx, s.vmName(fmt.Sprintf("kept-%d", i)), node)
		if err != nil {
			return err
		}
		kept = append(kept, a)
	}
	// A detached VM's address must stay free, not come back with the
	// restart as a second holder of an address given out again.
	gone, err := s.attachVM(ctx, s.vmName("gone"), s.opts.Nodes[0])
	if err != nil {
		return err
	}
	if err := s.detachVM(ctx, gone.GetVm(), gone.GetNode()); err != nil {
		return err
	}
	nodes := s.net.nodes
	if err := s.relaunch(ctx); err != nil {
		return err
	}
	// The host sets its nodes up again after a restart, not knowing what
	// the old process did.
	if err := s.setupNodes(ctx); err != nil {
		return fmt.Errorf("after the plugin restarted: %w", err)
	}
	for _, node := range s.opts.Nodes {
		was, is := nodes[node], s.net.nodes[node]
		if was.GetBridge() != is.GetBridge() || was.GetNetns() != is.GetNetns() {
			return fmt.Errorf("SetupNode %s answered bridge %q in netns %q before the plugin restarted, bridge %q in netns %q after",
				node, was.GetBridge(), was.GetNetns(), is.GetBridge(), is.GetNetns())
		}
	}
	if err := s.listsExactly(ctx, kept...); err != nil {
		return fmt.Errorf("after the plugin restarted: %w", err)
	}
	for _, a := range kept {
		again, err := s.attachVM(ctx, a.GetVm(), a.GetNode())
		if err != nil {
			return fmt.Errorf("after the plugin restarted: %w", err)
		}
		if !proto.Equal(again, a) {
			return fmt.Errorf("after the plugin restarted, AttachVM %s answered %v, before %v", a.GetVm(), again, a)
		}
	}
	all := slices.Clone(kept)
	for i := range afterRestart {
		a, err := s.attachVM(ctx, s.vmName(fmt.Sprintf("new-%d", i)), s.opts.Nodes[i%len(s.opts.Nodes)])
		if err != nil {
			return fmt.Errorf("after the plugin restarted: %w", err)
		}
		all = append(all, a)
	}
	if err := distinct(all); err != nil {
		return fmt.Errorf("after the plugin restarted: %w", err)
	}
	return nil
}

// checkDetachFreesAddress fills the address pool, detaches one VM and
// attaches another: only a freed address can take it. It needs the pool
// full because a plugin may rightly hand out every other free address
// before it reuses one.
func checkDetachFreesAddress(ctx context.Context, s *session) error {
	first, err := s.attachVM(ctx, s.vmName("pool-0000"), s.opts.Nodes[0])
	if err != nil {
		return err
	}
	subnet := ipOf(first).Masked()
	hostBits := subnet.Addr().BitLen() - subnet.Bits()
	if hostBits > 10 {
		return fmt.Errorf("the VMs' subnet %s holds more than %d addresses, too many to fill: run the suite with a subnet of at most /%d",
			subnet, maxPool, subnet.Addr().BitLen()-10)
	}
	atts := []*pb.Attachment{first}
	for i := 1; ; i++ {
		a, err := s.attachVM(ctx, s.vmName(fmt.Sprintf("pool-%04d", i)), s.opts.Nodes[i%len(s.opts.Nodes)])
		if status.Code(err) == codes.ResourceExhausted {
			break
		}
		if err != nil {
			return err
		}
		atts = append(atts, a)
		// A subnet never holds as many VMs as it has addresses.
		if len(atts) == 1<<hostBits {
			return fmt.Errorf("AttachVM handed out %d addresses from %s, which holds %d, without ResourceExhausted", len(atts), subnet, 1<<hostBits)
		}
	}
	if err := distinct(atts); err != nil {
		return fmt.Errorf("with the pool full: %w", err)
	}
	freed := atts[len(atts)/2]
	if err := s.detachVM(ctx, freed.GetVm(), freed.GetNode()); err != nil {
		return err
	}
	refill, err := s.attachVM(ctx, s.vmName("pool-refill"), s.opts.Nodes[0])
	if status.Code(err) == codes.ResourceExhausted {
		return fmt.Errorf("with %d VMs attached, the pool full, DetachVM %s did not free %s: %w", len(atts), freed.GetVm(), freed.GetIpCidr(), err)
	}
	if err != nil {
		return fmt.Errorf("after DetachVM %s: %w", freed.GetVm(), err)
	}
	atts[len(atts)/2] = refill
	if err := distinct(atts); err != nil {
		return fmt.Errorf("after DetachVM %s and AttachVM %s: %w", freed.GetVm(), refill.GetVm(), err)
	}
	return nil
}
