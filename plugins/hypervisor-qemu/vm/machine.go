package vm

import (
	"fmt"
	"path/filepath"
	"strconv"
)

// Files of an instance directory.
const (
	specFile    = "spec.json"
	devicesFile = "devices.json"
	handleFile  = "handle.json"
	pidFile     = "pid"
	qmpSocket   = "qmp.sock"
	agentSocket = "agent.sock"
	serialLog   = "serial.log"
	migrateSock = "migrate.sock"
)

// maxVCPUs bounds maxcpus; QEMU 7.2's q35 takes 288 without an IOMMU, far
// beyond what a VM on this kind of host gets.
const maxVCPUs = 255

// memoryBlock is virtio-mem's default block size on x86-64 and the
// alignment QEMU wants for RAM: every memory size is rounded up to it.
const memoryBlock = 2 << 20

// KernelArgs is the guest kernel's command line: the console QEMU writes to
// serial.log, hotplugged memory onlined by the kernel itself into the
// movable zone, so that it can be unplugged again, and no check of the
// IO-APIC timer, which a TCG guest on a busy host fails ("IO-APIC + timer
// doesn't work!", a panic at boot).
const KernelArgs = "console=ttyS0 memhp_default_state=online_movable no_timer_check quiet"

// Machine is everything a QEMU command line is built from. It is recorded
// with the instance, so a destination of a migration gets the same machine.
type Machine struct {
	Name     string `json:"name"`
	QEMU     string `json:"qemu"`
	Kernel   string `json:"kernel"`
	Initrd   string `json:"initrd"`
	Accel    string `json:"accel"`
	CPUModel string `json:"cpu_model"`
	// BootCPUs are present from the start; MaxCPUs - BootCPUs can be
	// hotplugged.
	BootCPUs int `json:"boot_cpus"`
	MaxCPUs  int `json:"max_cpus"`
	// BaseMemory is the guest's RAM; Region is the virtio-mem device's
	// (none when 0), of which Requested is plugged at boot.
	BaseMemory uint64 `json:"base_memory"`
	Region     uint64 `json:"region"`
	Requested  uint64 `json:"requested"`
	// The NIC (none without Tap): QEMU gets the tap, opened by the plugin
	// in namespace NetNS, as a descriptor; the guest's init configures
	// IPCIDR and Gateway.
	Tap     string `json:"tap,omitempty"`
	NetNS   string `json:"netns,omitempty"`
	MAC     string `json:"mac,omitempty"`
	IPCIDR  string `json:"ip_cidr,omitempty"`
	Gateway string `json:"gateway,omitempty"`
	// Disk is the VM's qcow2 overlay (none when empty), shared by the
	// two QEMUs of a migration.
	Disk string `json:"disk,omitempty"`
}

// machineFor lays out a spec's VM: boot vCPUs for its size, hotplug room up
// to its maximum, base RAM at its minimum and the rest in virtio-mem.
func machineFor(spec Spec, base Machine) Machine {
	m := base
	m.Name = spec.Name
	m.BootCPUs = cpusFor(spec.Size.VCPUMilli)
	m.MaxCPUs = cpusFor(spec.Bounds.Max.VCPUMilli)
	m.BaseMemory = roundUp(spec.Bounds.Min.MemoryBytes, memoryBlock)
	if top := roundUp(spec.Bounds.Max.MemoryBytes, memoryBlock); top > m.BaseMemory {
		m.Region = top - m.BaseMemory
	}
	m.Requested = m.requestedFor(spec.Size.MemoryBytes)
	m.Tap, m.NetNS, m.MAC, m.IPCIDR, m.Gateway = spec.Tap, spec.NetNS, spec.MAC, spec.IPCIDR, spec.Gateway
	return m
}

// requestedFor is the virtio-mem requested-size that gives the guest
// memory bytes in all: rounded up to whole blocks, within the region.
func (m Machine) requestedFor(memory uint64) uint64 {
	if memory <= m.BaseMemory {
		return 0
	}
	return min(roundUp(memory-m.BaseMemory, memoryBlock), m.Region)
}

// cpusFor is the whole vCPUs a fractional size needs.
func cpusFor(milli int64) int {
	return int((milli + 999) / 1000)
}

func roundUp(v, to uint64) uint64 {
	return (v + to - 1) / to * to
}

// kernelArgs adds the guest's address, which guest/init gives eth0.
func (m Machine) kernelArgs() string {
	args := KernelArgs
	if m.IPCIDR != "" {
		args += " vertigo.ip=" + m.IPCIDR
	}
	if m.Gateway != "" {
		args += " vertigo.gw=" + m.Gateway
	}
	return args
}

// Args is the QEMU command line for an instance in dir; incoming makes it a
// migration destination that waits for migrate-incoming.
func (m Machine) Args(dir string, incoming bool) []string {
	path := func(name string) string { return filepath.Join(dir, name) }
	memory := fmt.Sprintf("%db", m.BaseMemory)
	if m.Region > 0 {
		memory += fmt.Sprintf(",maxmem=%db", m.BaseMemory+m.Region)
	}
	args := []string{
		m.QEMU,
		"-name", m.Name,
		"-machine", "q35",
		"-accel", m.Accel,
		"-cpu", m.CPUModel,
		"-smp", fmt.Sprintf("cpus=%d,maxcpus=%d", m.BootCPUs, m.MaxCPUs),
		"-m", memory,
		"-kernel", m.Kernel,
		"-initrd", m.Initrd,
		"-append", m.kernelArgs(),
		"-nodefaults", "-no-user-config", "-no-reboot",
		"-display", "none",
		"-daemonize", "-pidfile", path(pidFile),
		"-qmp", "unix:" + path(qmpSocket) + ",server=on,wait=off",
		"-serial", "file:" + path(serialLog),
		"-device", "virtio-serial-pci,id=vser0",
		"-chardev", "socket,id=agent0,path=" + path(agentSocket) + ",server=on,wait=off",
		"-device", "virtserialport,chardev=agent0,name=org.vertigo.agent.0",
	}
	if m.Region > 0 {
		args = append(args,
			"-device", "pcie-root-port,id=rp1,chassis=1,slot=1",
			// The backend's id names the RAM block in the migration stream:
			// source and destination must agree on it.
			"-object", fmt.Sprintf("memory-backend-ram,id=vmem0,size=%db", m.Region),
			"-device", "virtio-mem-pci,id=vm0,memdev=vmem0,bus=rp1,requested-size="+strconv.FormatUint(m.Requested, 10),
		)
	}
	if m.Tap != "" {
		args = append(args,
			"-netdev", fmt.Sprintf("tap,id=net0,fd=%d", tapFD),
			"-device", "virtio-net-pci,netdev=net0,mac="+m.MAC,
		)
	}
	if m.Disk != "" {
		// Both QEMUs of a migration open the disk: the destination's stays
		// inactive (no write lock) until the source has flushed and let go
		// at the switch-over. cache=none is what a disk shared between real
		// hosts needs, and keeps the guest's I/O out of this host's cache.
		args = append(args,
			"-drive", "file="+m.Disk+",format=qcow2,if=none,id=disk0,cache=none,aio=native",
			"-device", "virtio-blk-pci,drive=disk0",
		)
	}
	if incoming {
		// -S: the destination holds the guest paused until the plugin
		// says cont, as libvirt does. A source paused for the copy (see
		// pausesForCopy) leaves it paused whatever -S says.
		args = append(args, "-incoming", "defer", "-S")
	}
	return args
}
