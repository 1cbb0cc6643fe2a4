package conformance

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// vmRecord is every VM a run started and has not seen stopped, so that
// cleanup stops them whatever happened in between.
type vmRecord struct {
	// prefix starts every VM name of the run ("conf-" and a random
	// suffix), so that two runs against one plugin never share a VM.
	prefix string
	specs  []*pb.VMSpec
}

func newVMRecord() vmRecord {
	return vmRecord{prefix: "conf-" + strings.ToLower(rand.Text()[:6])}
}

func (r *vmRecord) forget(name string) {
	r.specs = slices.DeleteFunc(r.specs, func(v *pb.VMSpec) bool { return v.GetName() == name })
}

// startVM starts a VM named after label on the first node and checks that
// StartVM answers with it running there, at the size asked.
func (s *session) startVM(ctx context.Context, label string, sz *pb.Size) (*pb.VMSpec, *pb.VMStatus, error) {
	spec := &pb.VMSpec{Name: s.vms.prefix + "-" + label, Node: s.opts.Nodes[0], Size: sz, Bounds: vmBounds}
	// Recorded first: a StartVM that fails half-way may still have
	// started the VM.
	s.vms.specs = append(s.vms.specs, spec)
	resp, err := s.c.Hypervisor.StartVM(ctx, &pb.StartVMRequest{Spec: spec})
	if err != nil {
		return nil, nil, fmt.Errorf("StartVM %s: %w", spec.GetName(), err)
	}
	st := resp.GetStatus()
	if err := checkRunning(st, spec.GetName(), spec.GetNode()); err != nil {
		return nil, nil, fmt.Errorf("StartVM: %w", err)
	}
	if !sameSize(st.GetSize(), sz) {
		return nil, nil, fmt.Errorf("StartVM: %s has %s, want %s", spec.GetName(), formatSize(st.GetSize()), formatSize(sz))
	}
	return spec, st, nil
}

// checkRunning checks that st says the VM name runs on node, with a handle
// to recover it by.
func checkRunning(st *pb.VMStatus, name, node string) error {
	switch {
	case st.GetName() != name:
		return fmt.Errorf("the status is for %q, want %q", st.GetName(), name)
	case st.GetState() != pb.VMState_VM_STATE_RUNNING:
		return fmt.Errorf("%s is %s, want RUNNING (message %q)", name, st.GetState(), st.GetMessage())
	case len(st.GetHandle()) == 0:
		return fmt.Errorf("%s has an empty handle: nothing to recover it by", name)
	case st.GetNode() != node:
		return fmt.Errorf("%s is on node %q, want %q", name, st.GetNode(), node)
	}
	return nil
}

func (s *session) stopVM(ctx context.Context, name string) error {
	if _, err := s.c.Hypervisor.StopVM(ctx, &pb.StopVMRequest{Name: name, GraceNanos: int64(stopGrace)}); err != nil {
		return fmt.Errorf("StopVM %s: %w", name, err)
	}
	s.vms.forget(name)
	return nil
}

// stopVMs stops every VM the run started and has not stopped yet; one that
// fails to stop stays recorded, for the next spec's cleanup to try again.
func (s *session) stopVMs(ctx context.Context) error {
	var errs []error
	for _, spec := range slices.Clone(s.vms.specs) {
		errs = append(errs, s.stopVM(ctx, spec.GetName()))
	}
	return errors.Join(errs...)
}

func (s *session) listVMs(ctx context.Context) ([]*pb.VMStatus, error) {
	resp, err := s.c.Hypervisor.ListVMs(ctx, &pb.ListVMsRequest{})
	if err != nil {
		return nil, fmt.Errorf("ListVMs: %w", err)
	}
	return resp.GetVms(), nil
}

// listed is name's entry in ListVMs, which must be there once.
func (s *session) listed(ctx context.Context, name string) (*pb.VMStatus, error) {
	vms, err := s.listVMs(ctx)
	if err != nil {
		return nil, err
	}
	var found []*pb.VMStatus
	for _, v := range vms {
		if v.GetName() == name {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("ListVMs lists %s %d times, want once", name, len(found))
	}
	return found[0], nil
}

// listedRunning checks that ListVMs shows name running on node and, unless
// handle is nil, with that handle.
func (s *session) listedRunning(ctx context.Context, name, node string, handle []byte) (*pb.VMStatus, error) {
	st, err := s.listed(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := checkRunning(st, name, node); err != nil {
		return nil, fmt.Errorf("ListVMs: %w", err)
	}
	if handle != nil && !bytes.Equal(st.GetHandle(), handle) {
		return nil, fmt.Errorf("ListVMs: %s has handle %q, StartVM gave %q", name, st.GetHandle(), handle)
	}
	return st, nil
}

func (s *session) resize(ctx context.Context, name string, target *pb.Size, force bool) (*pb.ResizeResponse, error) {
	resp, err := s.c.Hypervisor.Resize(ctx, &pb.ResizeRequest{
		Name: name, Target: target, Force: force, ConsentTimeoutNanos: int64(consentTimeout),
	})
	if err != nil {
		return nil, fmt.Errorf("Resize %s to %s (force %t): %w", name, formatSize(target), force, err)
	}
	return resp, nil
}

func (s *session) recoverVM(ctx context.Context, spec *pb.VMSpec, handle []byte) error {
	resp, err := s.c.Hypervisor.RecoverVM(ctx, &pb.RecoverVMRequest{Spec: spec, Handle: handle})
	if err != nil {
		return fmt.Errorf("RecoverVM %s with handle %q: %w", spec.GetName(), handle, err)
	}
	if err := checkRunning(resp.GetStatus(), spec.GetName(), spec.GetNode()); err != nil {
		return fmt.Errorf("RecoverVM: %w", err)
	}
	return nil
}

func (s *session) generateLoad(ctx context.Context, req *pb.GenerateLoadRequest) error {
	if _, err := s.c.Hypervisor.GenerateLoad(ctx, req); err != nil {
		return fmt.Errorf("GenerateLoad on %s: %w", req.GetName(), err)
	}
	return nil
}

// relaunch kills the plugin process and carries on with a new one,
// configured again, as the host's supervisor does after a crash.
func (s *session) relaunch(ctx context.Context) error {
	if err := s.opts.Kill(); err != nil {
		return fmt.Errorf("killing the plugin: %w", err)
	}
	c, err := s.opts.Relaunch(ctx)
	if err != nil {
		return fmt.Errorf("relaunching the plugin: %w", err)
	}
	s.c = c
	if err := s.configure(ctx); err != nil {
		return fmt.Errorf("after relaunching the plugin: %w", err)
	}
	return nil
}

// migration is how a Migrate stream went: the messages and the stream's
// own error, both for a spec to judge.
type migration struct {
	progress []*pb.MigrationProgress
	err      error
}

// end is the last message; migrate guarantees one when err is nil.
func (m migration) end() *pb.MigrationProgress { return m.progress[len(m.progress)-1] }

// migrate runs a migration of name to node to its end. Its error is for
// messages that break the protocol: a phase after the final one,
// transferred bytes going down, or an end without a final phase.
func (s *session) migrate(ctx context.Context, name, node string) (migration, error) {
	stream, err := s.c.Hypervisor.Migrate(ctx, &pb.MigrateRequest{
		Name: name, TargetNode: node,
		MaxBandwidthBytesPerSecond: uint64(migrationBandwidth), DowntimeLimitNanos: int64(migrationDowntime),
	})
	if err != nil {
		return migration{err: err}, nil
	}
	var m migration
	for {
		p, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			m.err = err
			return m, nil
		}
		if err := nextProgress(m.progress, p); err != nil {
			return m, fmt.Errorf("Migrate %s to %q: %w", name, node, err)
		}
		m.progress = append(m.progress, p)
	}
	if len(m.progress) == 0 || !finalPhase(m.end().GetPhase()) {
		return m, fmt.Errorf("Migrate %s to %q: the stream ended without a final phase", name, node)
	}
	return m, nil
}

// nextProgress checks that p may follow the messages so far.
func nextProgress(sofar []*pb.MigrationProgress, p *pb.MigrationProgress) error {
	if p.GetPhase() == pb.MigrationPhase_MIGRATION_PHASE_UNSPECIFIED {
		return fmt.Errorf("message %d has no phase", len(sofar))
	}
	if len(sofar) == 0 {
		return nil
	}
	prev := sofar[len(sofar)-1]
	switch {
	case finalPhase(prev.GetPhase()):
		return fmt.Errorf("%s after the final %s", p.GetPhase(), prev.GetPhase())
	// A migration that broke off may not know what it had transferred.
	case p.GetPhase() == pb.MigrationPhase_MIGRATION_PHASE_FAILED, p.GetPhase() == pb.MigrationPhase_MIGRATION_PHASE_CANCELLED:
		return nil
	case p.GetTransferredBytes() < prev.GetTransferredBytes():
		return fmt.Errorf("transferred_bytes went down from %d to %d", prev.GetTransferredBytes(), p.GetTransferredBytes())
	}
	return nil
}

func finalPhase(p pb.MigrationPhase) bool {
	switch p {
	case pb.MigrationPhase_MIGRATION_PHASE_COMPLETED, pb.MigrationPhase_MIGRATION_PHASE_FAILED, pb.MigrationPhase_MIGRATION_PHASE_CANCELLED:
		return true
	}
	return false
}
