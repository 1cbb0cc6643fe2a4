// Command vertigo-qemu is Vertigo's hypervisor plugin: it runs VMs as QEMU
// processes that outlive it, resizes them by vCPU hotplug and virtio-mem,
// live-migrates them between logical nodes, and relays what the guest agent
// in each VM reports.
package main

import "github.com/vertigo-autoscaler/vertigo/sdk"

func main() {
	p := newPlugin()
	sdk.Serve(p)
	// The VMs run on; the next plugin process re-attaches to them.
	p.detach()
}
