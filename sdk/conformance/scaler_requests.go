package conformance

import (
	"time"

	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// epoch is the decision time of every first request: fixed, so that a
// scaler's answer depends on the request alone.
var epoch = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

const (
	sampleEvery   = 5 * time.Second
	windowSamples = 12
)

var (
	unit       = size(250, gib)
	wideBounds = &pb.Bounds{Min: size(1000, 2*gib), Max: size(16000, 64*gib), Unit: unit}
	// oddBounds' max is no multiple of the unit, so the only goal at the top
	// that respects the bounds is max itself.
	oddBounds = &pb.Bounds{Min: size(1000, 2*gib), Max: size(7900, 30*gib+512*mib), Unit: unit}
)

// usage is what a guest reports, the same in every sample of a window.
type usage struct {
	load1                       float64
	memoryUsed                  uint64
	cpuPressure, memoryPressure float64 // PSI "some" avg10, percent
}

var idle = usage{load1: 0.02, memoryUsed: 256 * mib}

// busy is far beyond what current provides: eight runnable tasks per vCPU
// and memory all but full.
func busy(current *pb.Size) usage {
	return usage{
		load1:          8 * float64(current.GetVcpuMilli()) / 1000,
		memoryUsed:     current.GetMemoryBytes() - current.GetMemoryBytes()/32,
		cpuPressure:    60,
		memoryPressure: 40,
	}
}

// window is a minute of samples ending at now.
func window(now time.Time, current *pb.Size, u usage) *pb.MetricsWindow {
	w := &pb.MetricsWindow{}
	for i := windowSamples - 1; i >= 0; i-- {
		w.TUnixNano = append(w.TUnixNano, now.Add(-time.Duration(i)*sampleEvery).UnixNano())
		w.Load1 = append(w.Load1, u.load1)
		w.Load5 = append(w.Load5, u.load1)
		w.CpuPressureAvg10 = append(w.CpuPressureAvg10, u.cpuPressure)
		w.MemoryPressureAvg10 = append(w.MemoryPressureAvg10, u.memoryPressure)
		w.MemoryUsedBytes = append(w.MemoryUsedBytes, u.memoryUsed)
		w.MemoryCachedBytes = append(w.MemoryCachedBytes, 0)
		w.OnlineVcpuMilli = append(w.OnlineVcpuMilli, current.GetVcpuMilli())
		w.OnlineMemoryBytes = append(w.OnlineMemoryBytes, current.GetMemoryBytes())
	}
	return w
}

func input(vm string, current *pb.Size, b *pb.Bounds, now time.Time, u usage) *pb.ScalerInput {
	return &pb.ScalerInput{Vm: vm, Current: current, Bounds: b, Metrics: window(now, current, u)}
}

func decideRequest(now time.Time, vms ...*pb.ScalerInput) *pb.DecideRequest {
	return &pb.DecideRequest{NowUnixNano: now.UnixNano(), Vms: vms}
}

// mixedRequest is a tick of a small fleet in every situation at once, its
// VMs deliberately not in name order.
func mixedRequest(now time.Time) *pb.DecideRequest {
	return decideRequest(now,
		input("vm-idle-large", size(8000, 32*gib), wideBounds, now, idle),
		input("vm-busy", size(2000, 8*gib), wideBounds, now, busy(size(2000, 8*gib))),
		input("vm-busy-odd-max", size(4000, 16*gib), oddBounds, now, busy(size(4000, 16*gib))),
		input("vm-idle-at-min", wideBounds.GetMin(), wideBounds, now, idle),
		input("vm-steady", size(2000, 8*gib), wideBounds, now, usage{load1: 1.2, memoryUsed: 5 * gib}),
		// A VM whose guest has reported nothing yet.
		&pb.ScalerInput{Vm: "vm-new", Current: size(2000, 8*gib), Bounds: wideBounds, Metrics: &pb.MetricsWindow{}},
	)
}
