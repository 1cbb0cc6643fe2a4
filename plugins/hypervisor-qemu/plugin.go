package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/cgroup"
	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/fleet"
	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/qmp"
	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/vm"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

const (
	pluginName    = "vertigo-qemu"
	pluginVersion = "0.1.0"
	cgroupRoot    = "/sys/fs/cgroup"
)

var errNotConfigured = errors.New("the plugin has no configuration yet (SetConfig)")

// capabilities are what every configuration of the plugin can do;
// hypervisor.cpu_quota is added when the host's cgroups allow it.
var capabilities = []string{
	"hypervisor.vcpu_hotplug",
	"hypervisor.vcpu_offline_shrink",
	"hypervisor.memory_virtio_mem",
	"hypervisor.live_migration",
	"hypervisor.recover",
	"hypervisor.guest_agent",
	"hypervisor.load_generator",
}

// plugin adapts the fleet to the protocol. Reports outlive configurations,
// so a GuestReports stream survives a SetConfig.
type plugin struct {
	pb.UnimplementedHypervisorServer
	log hclog.Logger
	hub *fleet.Hub

	cgroupOnce sync.Once
	cpu        *cgroup.CPU
	// beforeResume is vm.Env's hook, for tests.
	beforeResume func(ctx context.Context, src, dst *qmp.Monitor) error

	mu    sync.RWMutex
	cfg   config
	fleet *fleet.Fleet
}

func newPlugin() *plugin {
	log := sdk.Logger(pluginName)
	return &plugin{log: log, hub: fleet.NewHub(log)}
}

func (p *plugin) Info() sdk.Info {
	return sdk.Info{Name: pluginName, Kind: pb.Kind_KIND_HYPERVISOR, Version: pluginVersion, APIVersions: sdk.APIVersions}
}

func (p *plugin) ConfigSchema() *pb.ConfigSchema { return configSchema() }

// SetConfig (re)configures the plugin and re-attaches to the VMs in
// run_dir. The same configuration again changes nothing.
func (p *plugin) SetConfig(ctx context.Context, configJSON []byte, _ uint32) error {
	cfg, err := decodeConfig(configJSON)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fleet != nil && cfg == p.cfg {
		return nil
	}
	if err := os.MkdirAll(cfg.RunDir, 0o700); err != nil {
		return sdk.FieldErrors{{Field: "run_dir", Message: err.Error()}}
	}
	p.cgroupOnce.Do(func() {
		cpu, err := cgroup.Detect(cgroupRoot)
		if err != nil {
			p.log.Warn("fractional vCPUs are not enforced: no usable CPU controller", "reason", err)
			return
		}
		p.cpu = cpu
		p.log.Info("fractional vCPUs are enforced with a CPU quota", "cgroup", cpu.Version())
	})
	if cfg.Accel == "auto" {
		p.log.Info("accel auto uses TCG: this kind of host's KVM cannot be trusted to run a guest; set accel = \"kvm\" to use it")
	}
	if p.fleet != nil {
		p.fleet.Detach()
	}
	nodes, _ := cfg.nodes()
	env := &vm.Env{
		RunDir:        cfg.RunDir,
		Base:          vm.Machine{QEMU: cfg.QEMU, Kernel: cfg.Kernel, Initrd: cfg.Initrd, Accel: cfg.accel(), CPUModel: cfg.CPUModel},
		ImagesDir:     cfg.ImagesDir,
		QEMUImg:       cfg.QEMUImg,
		AgentTimeout:  cfg.AgentTimeout,
		ResizeTimeout: cfg.ResizeTimeout,
		CPU:           p.cpu,
		Reporter:      p.hub,
		Log:           p.log,
		BeforeResume:  p.beforeResume,
	}
	p.cfg, p.fleet = cfg, fleet.New(env, nodes)
	// Re-attaching must not be cut short by the caller's deadline: a VM
	// given up on would be reported failed.
	return p.fleet.RecoverAll(context.WithoutCancel(ctx))
}

func (p *plugin) Capabilities(context.Context) []string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	caps := slices.Clone(capabilities)
	if p.cpu != nil {
		caps = append(caps, "hypervisor.cpu_quota")
	}
	return caps
}

func (p *plugin) Health(context.Context) error {
	cfg, _, err := p.configured()
	if err != nil {
		return err
	}
	return cfg.missing()
}

func (p *plugin) configured() (config, *fleet.Fleet, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.fleet == nil {
		return config{}, nil, errNotConfigured
	}
	return p.cfg, p.fleet, nil
}

// vm is the named VM of the configured fleet.
func (p *plugin) vm(name string) (config, *vm.VM, error) {
	cfg, f, err := p.configured()
	if err != nil {
		return cfg, nil, err
	}
	v, err := f.Get(name)
	return cfg, v, err
}

// detach lets go of the VMs when the plugin exits; they run on.
func (p *plugin) detach() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fleet != nil {
		p.fleet.Detach()
	}
}

func (p *plugin) StartVM(ctx context.Context, req *pb.StartVMRequest) (*pb.StartVMResponse, error) {
	cfg, f, err := p.configured()
	if err != nil {
		return nil, errorTo(err)
	}
	if err := cfg.missing(); err != nil {
		return nil, errorTo(fmt.Errorf("%w: %v", errNotConfigured, err))
	}
	st, err := f.Start(ctx, specFrom(req.GetSpec()))
	if err != nil {
		return nil, errorTo(err)
	}
	return &pb.StartVMResponse{Status: statusTo(st)}, nil
}

func (p *plugin) StopVM(ctx context.Context, req *pb.StopVMRequest) (*pb.StopVMResponse, error) {
	cfg, f, err := p.configured()
	if err != nil {
		return nil, errorTo(err)
	}
	grace := time.Duration(req.GetGraceNanos())
	if grace < 0 {
		return nil, errorTo(fmt.Errorf("%w: grace_nanos: must not be negative, got %d", vm.ErrInvalid, grace))
	}
	if grace == 0 {
		grace = cfg.StopGrace
	}
	return &pb.StopVMResponse{}, errorTo(f.Stop(ctx, req.GetName(), grace))
}

func (p *plugin) RecoverVM(ctx context.Context, req *pb.RecoverVMRequest) (*pb.RecoverVMResponse, error) {
	_, f, err := p.configured()
	if err != nil {
		return nil, errorTo(err)
	}
	st, err := f.Recover(context.WithoutCancel(ctx), req.GetSpec().GetName(), req.GetHandle())
	if err != nil {
		return nil, errorTo(err)
	}
	return &pb.RecoverVMResponse{Status: statusTo(st)}, nil
}

func (p *plugin) ListVMs(context.Context, *pb.ListVMsRequest) (*pb.ListVMsResponse, error) {
	_, f, err := p.configured()
	if err != nil {
		return nil, errorTo(err)
	}
	resp := &pb.ListVMsResponse{}
	for _, st := range f.List() {
		resp.Vms = append(resp.Vms, statusTo(st))
	}
	return resp, nil
}

func (p *plugin) Resize(ctx context.Context, req *pb.ResizeRequest) (*pb.ResizeResponse, error) {
	cfg, v, err := p.vm(req.GetName())
	if err != nil {
		return nil, errorTo(err)
	}
	consent := time.Duration(req.GetConsentTimeoutNanos())
	if consent <= 0 {
		consent = cfg.ConsentTimeout
	}
	r, err := v.Resize(ctx, sizeFrom(req.GetTarget()), req.GetForce(), consent)
	if err != nil {
		return nil, errorTo(err)
	}
	return &pb.ResizeResponse{Actual: sizeTo(r.Actual), Refused: r.Refused, RefusalReason: r.Reason}, nil
}

func (p *plugin) Migrate(req *pb.MigrateRequest, stream pb.Hypervisor_MigrateServer) error {
	cfg, f, err := p.configured()
	if err != nil {
		return errorTo(err)
	}
	if err := f.CheckNode("target_node", req.GetTargetNode()); err != nil {
		return errorTo(err)
	}
	v, err := f.Get(req.GetName())
	if err != nil {
		return errorTo(err)
	}
	to := vm.Target{
		Node: req.GetTargetNode(), Tap: req.GetTargetTap(), NetNS: req.GetTargetNetns(),
		Bandwidth: req.GetMaxBandwidthBytesPerSecond(), Downtime: time.Duration(req.GetDowntimeLimitNanos()),
		SkipAnnounce: req.GetSkipAnnounce(),
	}
	if to.Bandwidth == 0 {
		to.Bandwidth = cfg.MigrationBandwidth
	}
	if to.Downtime <= 0 {
		to.Downtime = cfg.MigrationDowntime
	}
	// A host that stops listening cancels the migration (stream.Context
	// ends); a failed send alone does not.
	return errorTo(v.Migrate(stream.Context(), to, func(pr vm.Progress) {
		_ = stream.Send(progressTo(pr))
	}))
}

func (p *plugin) CancelMigration(_ context.Context, req *pb.CancelMigrationRequest) (*pb.CancelMigrationResponse, error) {
	_, v, err := p.vm(req.GetName())
	if err != nil {
		return nil, errorTo(err)
	}
	v.CancelMigration()
	return &pb.CancelMigrationResponse{}, nil
}

func (p *plugin) GuestReports(req *pb.GuestReportsRequest, stream pb.Hypervisor_GuestReportsServer) error {
	sub := p.hub.Subscribe(req.GetNames())
	defer sub.Close()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case r := <-sub.Reports():
			if err := stream.Send(r); err != nil {
				return err
			}
		}
	}
}

func (p *plugin) GenerateLoad(ctx context.Context, req *pb.GenerateLoadRequest) (*pb.GenerateLoadResponse, error) {
	_, v, err := p.vm(req.GetName())
	if err != nil {
		return nil, errorTo(err)
	}
	err = v.GenerateLoad(ctx, int(req.GetCpuWorkers()), req.GetMemoryBytes(), time.Duration(req.GetDurationNanos()))
	return &pb.GenerateLoadResponse{}, errorTo(err)
}
