package conformance

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
	"github.com/vertigo-autoscaler/vertigo/sdk/schema"
)

// The fake hypervisor keeps its VMs in memory, with no QEMU: the smallest
// honest implementation of the protocol, to show the hypervisor suite
// passes against a correct plugin, and a base for the broken variants that
// must fail it.

const (
	// fakeReserved is what the fake guest's kernel keeps: it reports that
	// much less memory online than its VM has, as a real guest does.
	fakeReserved = 32 * mib
	// fakeBaseUsed is the fake guest's memory use without load.
	fakeBaseUsed = 64 * mib
	// fakeReportEvery is how often GuestReports sends a sample.
	fakeReportEvery = 5 * time.Millisecond
	// fakeConsentMargin is what the fake guest keeps free over its use
	// when it consents to a downscale.
	fakeConsentMargin = 100 * mib
)

var fakeNodes = []string{"node-a", "node-b"}

// fakeMachine is what outlives a fake plugin process, as QEMU processes
// outlive the real plugin: the VMs, by name.
type fakeMachine struct {
	mu      sync.Mutex
	vms     map[string]*fakeVM
	pids    int      // the last pid handed out
	started []string // the name of every VM ever started, in order
}

func newFakeMachine() *fakeMachine { return &fakeMachine{vms: map[string]*fakeVM{}} }

// running is the names of the VMs on the machine, sorted.
func (m *fakeMachine) running() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.vms))
}

func (m *fakeMachine) startedNames() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.started)
}

// vm returns the VM name; the caller holds m.mu.
func (m *fakeMachine) vm(name string) (*fakeVM, error) {
	v, ok := m.vms[name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no VM %q", name)
	}
	return v, nil
}

func (m *fakeMachine) nextPID() int {
	m.pids++
	return m.pids
}

// reports is one sample of every VM named (all when names is empty).
func (m *fakeMachine) reports(names []string) []*pb.GuestReport {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	var out []*pb.GuestReport
	for _, name := range slices.Sorted(maps.Keys(m.vms)) {
		if len(names) == 0 || slices.Contains(names, name) {
			out = append(out, &pb.GuestReport{Name: name, Metrics: m.vms[name].sample(now)})
		}
	}
	return out
}

type fakeVM struct {
	spec *pb.VMSpec
	node string
	size *pb.Size
	pid  int
	// booted is where the guest's uptime counts from: a live migration
	// keeps it. A new guest starts an hour old, so that a reboot shows as
	// a drop whatever the timing of the samples.
	booted time.Time
	// startedBy is the plugin process that started the VM.
	startedBy *fakeHypervisor
	load      *pb.GenerateLoadRequest
	loadUntil time.Time
}

func (v *fakeVM) status() *pb.VMStatus {
	return &pb.VMStatus{
		Name: v.spec.GetName(), Node: v.node, State: pb.VMState_VM_STATE_RUNNING, Size: v.size,
		Handle: fmt.Appendf(nil, `{"pid":%d}`, v.pid),
	}
}

func (v *fakeVM) loaded(now time.Time) bool { return now.Before(v.loadUntil) }

func (v *fakeVM) used(now time.Time) uint64 {
	if v.loaded(now) {
		return fakeBaseUsed + v.load.GetMemoryBytes()
	}
	return fakeBaseUsed
}

func (v *fakeVM) sample(now time.Time) *pb.MetricsWindow {
	var load1 float64
	if v.loaded(now) {
		load1 = float64(v.load.GetCpuWorkers())
	}
	return &pb.MetricsWindow{
		TUnixNano:         []int64{now.UnixNano()},
		Load1:             []float64{load1},
		MemoryUsedBytes:   []uint64{v.used(now)},
		OnlineVcpuMilli:   []int64{v.size.GetVcpuMilli()},
		OnlineMemoryBytes: []uint64{v.size.GetMemoryBytes() - fakeReserved},
		UptimeNanos:       []int64{int64(now.Sub(v.booted))},
	}
}

// fakeHypervisor is one plugin process over a fakeMachine.
type fakeHypervisor struct {
	pb.UnimplementedHypervisorServer
	m    *fakeMachine
	caps []string

	mu     sync.Mutex
	config []byte // the configuration accepted last; nil until then
}

var allHypervisorCaps = []string{
	capVCPUHotplug, capVCPUOfflineShrink, capMemoryVirtioMem, capLiveMigration,
	capRecover, capGuestAgent, capLoadGenerator,
}

type fakeConfig struct {
	Kernel string `json:"kernel"`
}

func (f *fakeHypervisor) Info() sdk.Info {
	return sdk.Info{Name: "fake-hypervisor", Kind: pb.Kind_KIND_HYPERVISOR, Version: "0.1.0", APIVersions: sdk.APIVersions}
}

// ConfigSchema has no defaults to run on: the suite must send Options.ConfigJSON.
func (f *fakeHypervisor) ConfigSchema() *pb.ConfigSchema {
	return schema.Of(schema.Required(schema.String("kernel", "", "the guest kernel")))
}

func (f *fakeHypervisor) SetConfig(_ context.Context, configJSON []byte, _ uint32) error {
	var cfg fakeConfig
	if err := sdk.DecodeConfig(configJSON, &cfg); err != nil {
		return err
	}
	if cfg.Kernel == "" {
		return sdk.FieldErrors{{Field: "kernel", Message: "must name the guest kernel"}}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.config = configJSON
	return nil
}

func (f *fakeHypervisor) Capabilities(context.Context) []string { return f.caps }

func (f *fakeHypervisor) Health(context.Context) error { return nil }

func (f *fakeHypervisor) configured() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.config
}

// ready refuses calls before SetConfig, as a plugin without its kernel
// path must.
func (f *fakeHypervisor) ready() error {
	if f.configured() == nil {
		return status.Error(codes.FailedPrecondition, "not configured")
	}
	return nil
}

func within(s *pb.Size, b *pb.Bounds) bool { return fits(b.GetMin(), s) && fits(s, b.GetMax()) }

func (f *fakeHypervisor) StartVM(_ context.Context, req *pb.StartVMRequest) (*pb.StartVMResponse, error) {
	if err := f.ready(); err != nil {
		return nil, err
	}
	spec := req.GetSpec()
	if !slices.Contains(fakeNodes, spec.GetNode()) {
		return nil, status.Errorf(codes.InvalidArgument, "spec.node: no node %q", spec.GetNode())
	}
	if !within(spec.GetSize(), spec.GetBounds()) {
		return nil, status.Errorf(codes.InvalidArgument, "spec.size: %s outside the bounds", formatSize(spec.GetSize()))
	}
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if v, ok := f.m.vms[spec.GetName()]; ok {
		return &pb.StartVMResponse{Status: v.status()}, nil
	}
	v := &fakeVM{spec: spec, node: spec.GetNode(), size: spec.GetSize(), pid: f.m.nextPID(), booted: time.Now().Add(-time.Hour), startedBy: f}
	f.m.vms[spec.GetName()] = v
	f.m.started = append(f.m.started, spec.GetName())
	return &pb.StartVMResponse{Status: v.status()}, nil
}

func (f *fakeHypervisor) StopVM(_ context.Context, req *pb.StopVMRequest) (*pb.StopVMResponse, error) {
	if err := f.ready(); err != nil {
		return nil, err
	}
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	delete(f.m.vms, req.GetName())
	return &pb.StopVMResponse{}, nil
}

func (f *fakeHypervisor) RecoverVM(_ context.Context, req *pb.RecoverVMRequest) (*pb.RecoverVMResponse, error) {
	if err := f.ready(); err != nil {
		return nil, err
	}
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	v, err := f.m.vm(req.GetSpec().GetName())
	if err != nil {
		return nil, err
	}
	if st := v.status(); !bytes.Equal(st.GetHandle(), req.GetHandle()) {
		return nil, status.Errorf(codes.NotFound, "handle %q is not the VM's %q", req.GetHandle(), st.GetHandle())
	}
	return &pb.RecoverVMResponse{Status: v.status()}, nil
}

func (f *fakeHypervisor) ListVMs(context.Context, *pb.ListVMsRequest) (*pb.ListVMsResponse, error) {
	return f.list(func(*fakeVM) bool { return true })
}

// list lists the VMs that keep says this process knows.
func (f *fakeHypervisor) list(keep func(*fakeVM) bool) (*pb.ListVMsResponse, error) {
	if err := f.ready(); err != nil {
		return nil, err
	}
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	resp := &pb.ListVMsResponse{}
	for _, name := range slices.Sorted(maps.Keys(f.m.vms)) {
		if v := f.m.vms[name]; keep(v) {
			resp.Vms = append(resp.Vms, v.status())
		}
	}
	return resp, nil
}

func (f *fakeHypervisor) Resize(_ context.Context, req *pb.ResizeRequest) (*pb.ResizeResponse, error) {
	if err := f.ready(); err != nil {
		return nil, err
	}
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	v, err := f.m.vm(req.GetName())
	if err != nil {
		return nil, err
	}
	target := req.GetTarget()
	if !within(target, v.spec.GetBounds()) {
		return nil, status.Errorf(codes.InvalidArgument, "target: %s outside the bounds", formatSize(target))
	}
	shrinks := !fits(v.size, target)
	if used := v.used(time.Now()); shrinks && !req.GetForce() && target.GetMemoryBytes() < used+fakeConsentMargin {
		return &pb.ResizeResponse{
			Actual: v.size, Refused: true,
			RefusalReason: fmt.Sprintf("the guest uses %s, too much for %s", formatBytes(used), formatBytes(target.GetMemoryBytes())),
		}, nil
	}
	v.size = target
	return &pb.ResizeResponse{Actual: target}, nil
}

func (f *fakeHypervisor) Migrate(req *pb.MigrateRequest, stream pb.Hypervisor_MigrateServer) error {
	if err := f.ready(); err != nil {
		return err
	}
	f.m.mu.Lock()
	v, err := f.m.vm(req.GetName())
	if err != nil {
		f.m.mu.Unlock()
		return err
	}
	total := v.size.GetMemoryBytes()
	f.m.mu.Unlock()
	if !slices.Contains(fakeNodes, req.GetTargetNode()) {
		return stream.Send(&pb.MigrationProgress{Phase: pb.MigrationPhase_MIGRATION_PHASE_FAILED, Message: fmt.Sprintf("no node %q", req.GetTargetNode())})
	}
	for _, p := range []*pb.MigrationProgress{
		{Phase: pb.MigrationPhase_MIGRATION_PHASE_PREPARING, RemainingBytes: total},
		{Phase: pb.MigrationPhase_MIGRATION_PHASE_TRANSFERRING, TransferredBytes: total / 2, RemainingBytes: total / 2},
		{Phase: pb.MigrationPhase_MIGRATION_PHASE_TRANSFERRING, TransferredBytes: total},
	} {
		if err := stream.Send(p); err != nil {
			return err
		}
	}
	f.m.mu.Lock()
	v.node, v.pid = req.GetTargetNode(), f.m.nextPID()
	f.m.mu.Unlock()
	return stream.Send(&pb.MigrationProgress{Phase: pb.MigrationPhase_MIGRATION_PHASE_COMPLETED, TransferredBytes: total})
}

func (f *fakeHypervisor) GuestReports(req *pb.GuestReportsRequest, stream pb.Hypervisor_GuestReportsServer) error {
	if err := f.ready(); err != nil {
		return err
	}
	tick := time.NewTicker(fakeReportEvery)
	defer tick.Stop()
	for {
		for _, r := range f.m.reports(req.GetNames()) {
			if err := stream.Send(r); err != nil {
				return err
			}
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-tick.C:
		}
	}
}

func (f *fakeHypervisor) GenerateLoad(_ context.Context, req *pb.GenerateLoadRequest) (*pb.GenerateLoadResponse, error) {
	if err := f.ready(); err != nil {
		return nil, err
	}
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	v, err := f.m.vm(req.GetName())
	if err != nil {
		return nil, err
	}
	v.load, v.loadUntil = req, time.Now().Add(time.Duration(req.GetDurationNanos()))
	return &pb.GenerateLoadResponse{}, nil
}
