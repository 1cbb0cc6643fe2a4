package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vertigo-autoscaler/vertigo/host/api"
	"github.com/vertigo-autoscaler/vertigo/host/model"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// hypervisorFloor resizes VMs straight through the QEMU plugin, as the
// host does but with nothing before the call: what no pipeline can beat.
type hypervisorFloor struct {
	plugin *sdk.Launched
	runDir string
}

// floorRun is one resize through the plugin alone; times are from the
// call.
type floorRun struct {
	from, to uint64 // online before, and when more was reported
	returned time.Duration
	online   time.Duration // the guest reports more online: the figure
}

func launchFloor(ctx context.Context, s guestSetup, stderr io.Writer) (*hypervisorFloor, error) {
	dir, err := os.MkdirTemp("", "vbf")
	if err != nil {
		return nil, err
	}
	p, err := launchQEMU(ctx, s, dir, stderr)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &hypervisorFloor{plugin: p, runDir: dir}, nil
}

// close stops the floor's VMs and its plugin.
func (f *hypervisorFloor) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	err := stopAll(ctx, f.plugin.Client)
	f.plugin.Kill()
	err = errors.Join(err, killQEMUs(f.runDir))
	return errors.Join(err, os.RemoveAll(f.runDir))
}

// resize starts a VM like d's under name, applies d's load step, and
// resizes it to target wait after the first report that shows the load
// running; it times the first report of more online. The VM is stopped
// afterwards.
func (f *hypervisorFloor) resize(ctx context.Context, d dimension, name string, target model.Size, wait time.Duration) (_ floorRun, err error) {
	hv := f.plugin.Hypervisor
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the report stream
	// The stream is open before the VM starts, so no report is missed.
	stream, err := hv.GuestReports(ctx, &pb.GuestReportsRequest{Names: []string{name}})
	if err != nil {
		return floorRun{}, err
	}
	reports := stampReports(ctx, stream)
	spec := d.vm.spec()
	spec.Name = name
	bootCtx, booted := context.WithTimeout(ctx, guestBoot)
	_, err = hv.StartVM(bootCtx, &pb.StartVMRequest{Spec: spec})
	booted()
	if err != nil {
		return floorRun{}, fmt.Errorf("starting vm %s: %w", name, err)
	}
	defer func() {
		stopCtx, stopped := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer stopped()
		if _, serr := hv.StopVM(stopCtx, &pb.StopVMRequest{Name: name, GraceNanos: int64(guestStopGrace)}); serr != nil {
			err = errors.Join(err, fmt.Errorf("stopping vm %s: %w", name, serr))
		}
	}()

	// The same step as through the host: a busy guest onlines more slowly,
	// and that is not the pipeline's doing.
	before, _, err := nextReport(ctx, reports, func(api.Usage) bool { return true })
	if err != nil {
		return floorRun{}, err
	}
	step := d.load(before)
	_, err = hv.GenerateLoad(ctx, &pb.GenerateLoadRequest{Name: name, CpuWorkers: step.CPUWorkers, MemoryBytes: step.MemoryBytes, DurationNanos: step.DurationNs})
	if err != nil {
		return floorRun{}, fmt.Errorf("loading vm %s: %w", name, err)
	}
	_, loaded, err := nextReport(ctx, reports, func(api.Usage) bool { return true })
	if err != nil {
		return floorRun{}, err
	}
	pause := time.NewTimer(time.Until(loaded.Add(wait)))
	defer pause.Stop()
	select {
	case <-pause.C:
	case <-ctx.Done():
		return floorRun{}, ctx.Err()
	}

	run := floorRun{from: d.online(before)}
	t0 := time.Now()
	resizeCtx, resized := context.WithTimeout(ctx, reactTimeout)
	_, err = hv.Resize(resizeCtx, &pb.ResizeRequest{Name: name, Target: target.Proto()})
	resized()
	if err != nil {
		return run, fmt.Errorf("resizing vm %s to %s: %w", name, target, err)
	}
	run.returned = time.Since(t0)
	u, at, err := nextReport(ctx, reports, func(u api.Usage) bool { return d.online(u) > run.from })
	if err != nil {
		return run, fmt.Errorf("vm %s grown to %s: %w", name, target, err)
	}
	run.online, run.to = at.Sub(t0), d.online(u)
	return run, nil
}

// stampedReport is a guest's latest sample and when it arrived.
type stampedReport struct {
	usage api.Usage
	at    time.Time
}

// stampReports receives a report stream in the background and stamps each
// periodic report as it arrives, so one that comes while the caller waits
// for a call keeps its true time. A report with events (the agent's hello)
// is left out: its sample is off the reports' beat. The channel closes
// with the stream.
func stampReports(ctx context.Context, stream pb.Hypervisor_GuestReportsClient) <-chan stampedReport {
	c := make(chan stampedReport, 64)
	go func() {
		defer close(c)
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			w := r.GetMetrics()
			if len(w.GetTUnixNano()) == 0 || len(r.GetEvents()) > 0 {
				continue
			}
			u := api.Usage{
				Load1:           last(w.GetLoad1()),
				OnlineVCPUMilli: last(w.GetOnlineVcpuMilli()),
				MemoryUsed:      last(w.GetMemoryUsedBytes()),
				OnlineMemory:    last(w.GetOnlineMemoryBytes()),
				UptimeNanos:     last(w.GetUptimeNanos()),
			}
			select {
			case c <- stampedReport{usage: u, at: time.Now()}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return c
}

// nextReport is the first report from c that satisfies ok, within
// reactTimeout.
func nextReport(ctx context.Context, c <-chan stampedReport, ok func(api.Usage) bool) (api.Usage, time.Time, error) {
	deadline := time.NewTimer(reactTimeout)
	defer deadline.Stop()
	for {
		select {
		case r, open := <-c:
			if !open {
				return api.Usage{}, time.Time{}, errors.New("the guest report stream ended")
			}
			if ok(r.usage) {
				return r.usage, r.at, nil
			}
		case <-deadline.C:
			return api.Usage{}, time.Time{}, fmt.Errorf("no such guest report within %v", reactTimeout)
		case <-ctx.Done():
			return api.Usage{}, time.Time{}, ctx.Err()
		}
	}
}
