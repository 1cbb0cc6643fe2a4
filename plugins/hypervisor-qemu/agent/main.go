// Command vertigo-agent is the guest agent of Vertigo's QEMU plugin: a
// static binary in the guest that reports load, pressure and memory over a
// virtio-serial port, onlines hotplugged vCPUs and memory, consents to or
// refuses a downscale, and raises memory pressure events. The protocol is
// in package agentproto.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentproto"
)

// portWait is how long the agent waits for its port before it gives up and
// lets init restart it, logging why on the console.
const portWait = 30 * time.Second

func main() {
	logger := log.New(os.Stderr, "vertigo-agent: ", 0)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, logger); err != nil && ctx.Err() == nil {
		logger.Printf("%v", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, logger *log.Logger) error {
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	args, err := parseKernelArgs(string(cmdline))
	if err != nil {
		return err
	}
	if args.echoPort != 0 {
		go serveEcho(ctx, fmt.Sprintf(":%d", args.echoPort), logger)
	}
	a := newAgent(realSystem, args.memoryFloor, kernelRelease(), time.Now, bootTime, logger)
	// Onlining does not wait for the port: a guest whose host is away still
	// gets its hotplugged CPUs and memory.
	go a.watchHotplug(ctx)
	go a.watchMemory(ctx)
	go a.watchCPU(ctx)
	go a.reportMetrics(ctx)

	path, err := waitPort(ctx, realSystem.sys, "/dev", agentproto.PortName, portWait)
	if err != nil {
		return err
	}
	p, err := openPort(path)
	if err != nil {
		return err
	}
	logger.Printf("started on %s (uptime %v)", path, bootTime().Round(time.Millisecond))
	errc := make(chan error, 1)
	go func() { errc <- a.serve(ctx, p) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		a.loads.stop()
		return nil
	}
}

// bootTime is the guest's uptime, suspend included.
func bootTime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}
