package main

import (
	"context"
	"errors"
	"time"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentproto"
)

// watchHotplug onlines hotplugged CPUs and memory as the kernel announces
// them, and rescans now and then in case an announcement was lost.
func (a *agent) watchHotplug(ctx context.Context) {
	events := make(chan uevent, 64)
	rescan := make(chan struct{}, 1)
	if sock, err := listenUevents(); err != nil {
		a.log.printf("no uevents (%v): onlining hotplugged CPUs and memory every %v only", err, rescanInterval)
	} else {
		go a.receiveUevents(sock, events, rescan)
	}
	tick := time.NewTicker(rescanInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			a.onUevent(ev)
		case <-rescan:
			a.scan()
		case <-tick.C:
			a.scan()
		}
	}
}

// receiveUevents forwards the events the agent acts on; it runs for the
// life of the process, blocked in recvfrom.
func (a *agent) receiveUevents(sock *ueventSocket, events chan<- uevent, rescan chan<- struct{}) {
	buf := make([]byte, 16<<10)
	for {
		b, err := sock.receive(buf)
		if errors.Is(err, errMissedEvents) {
			select {
			case rescan <- struct{}{}:
			default:
			}
			continue
		}
		if err != nil {
			a.log.printf("uevents: %v; onlining by rescan only", err)
			return
		}
		ev, err := parseUevent(b)
		if err != nil {
			a.log.error("uevent", err)
			continue
		}
		if ev.Subsystem == "cpu" || ev.Subsystem == "memory" {
			events <- ev
		}
	}
}

// onUevent acts on one CPU or memory event.
func (a *agent) onUevent(ev uevent) {
	switch {
	case ev.Subsystem == "cpu" && ev.Action == "add":
		a.reconcileCPUs()
	case ev.Subsystem == "memory" && ev.Action == "add":
		a.onlineMemory(ev.device())
	case ev.Subsystem == "memory" && ev.Action == "online":
		// The kernel onlined it itself (memhp_default_state).
		a.sampleMemoryNow()
	}
}

// scan is the fallback: every offline CPU and memory block is looked at.
func (a *agent) scan() {
	a.reconcileCPUs()
	blocks, err := a.sys.offlineMemoryBlocks()
	a.log.error("memory scan", err)
	for _, b := range blocks {
		a.onlineMemory(b)
	}
}

func (a *agent) onlineMemory(block string) {
	onlined, err := a.sys.onlineMemoryBlock(block)
	a.log.error("online "+block, err)
	if onlined {
		a.sampleMemoryNow()
	}
}

// reconcileCPUs applies the CPU target and announces CPUs it onlined.
func (a *agent) reconcileCPUs() {
	res, err := a.cpus.reconcile()
	a.log.error("cpus", err)
	a.announceCPUs(res)
}

func (a *agent) announceCPUs(res cpuResult) {
	if len(res.Onlined) == 0 {
		return
	}
	ev := a.event(agentproto.EventCPUOnline)
	ev.OnlineCPUs = res.Online
	a.out.post(ev)
	a.postState()
}
