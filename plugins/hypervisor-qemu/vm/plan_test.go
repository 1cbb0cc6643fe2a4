package vm

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// slotsJSON is what QEMU 7.2 answered to query-hotpluggable-cpus for
// -smp cpus=1,maxcpus=4: free slots in reverse order, the boot vCPU last.
const slotsJSON = `[
 {"props": {"core-id": 3, "thread-id": 0, "node-id": 0, "socket-id": 0}, "vcpus-count": 1, "type": "qemu64-x86_64-cpu"},
 {"props": {"core-id": 2, "thread-id": 0, "node-id": 0, "socket-id": 0}, "vcpus-count": 1, "type": "qemu64-x86_64-cpu"},
 {"props": {"core-id": 1, "thread-id": 0, "node-id": 0, "socket-id": 0}, "vcpus-count": 1, "type": "qemu64-x86_64-cpu"},
 {"props": {"core-id": 0, "thread-id": 0, "node-id": 0, "socket-id": 0}, "vcpus-count": 1, "qom-path": "/machine/unattached/device[0]", "type": "qemu64-x86_64-cpu"}]`

func slots(t *testing.T) []HotpluggableCPU {
	var s []HotpluggableCPU
	require.NoError(t, json.Unmarshal([]byte(slotsJSON), &s))
	return s
}

func TestPlanCPUsPlugsTheLowestFreeSlots(t *testing.T) {
	plan, err := planCPUs(2500, 1, slots(t))
	require.NoError(t, err)
	require.Equal(t, 3, plan.Online)
	require.Equal(t, []CPUSlot{
		{ID: "cpu-s0-c1-t0", Driver: "qemu64-x86_64-cpu", CoreID: 1},
		{ID: "cpu-s0-c2-t0", Driver: "qemu64-x86_64-cpu", CoreID: 2},
	}, plan.Plug)
	require.Equal(t, map[string]any{"driver": "qemu64-x86_64-cpu", "id": "cpu-s0-c1-t0", "socket-id": 0, "core-id": 1, "thread-id": 0}, plan.Plug[0].deviceAddArgs())
}

func TestPlanCPUsOnlinesPresentVCPUsBeforePlugging(t *testing.T) {
	// Three present (one booted, two plugged and then offlined): growing to
	// three needs no new slot.
	plan, err := planCPUs(3000, 3, slots(t))
	require.NoError(t, err)
	require.Equal(t, cpuPlan{Online: 3}, plan)
}

func TestPlanCPUsNeverUnplugs(t *testing.T) {
	plan, err := planCPUs(1000, 4, slots(t))
	require.NoError(t, err)
	require.Equal(t, cpuPlan{Online: 1}, plan)
	// A fraction still needs a whole vCPU online; the quota trims it.
	plan, err = planCPUs(250, 4, slots(t))
	require.NoError(t, err)
	require.Equal(t, 1, plan.Online)
}

func TestPlanCPUsSaysWhenSlotsRunOut(t *testing.T) {
	_, err := planCPUs(5000, 1, slots(t))
	require.ErrorContains(t, err, "5 vCPUs wanted, 1 present and only 3 hotpluggable slots free")
}

func TestEffectiveMilliHonoursTheQuotaOnlyWhenEnforced(t *testing.T) {
	require.Equal(t, int64(1500), effectiveMilli(2, 1500, true))
	require.Equal(t, int64(2000), effectiveMilli(2, 1500, false))
	// Fewer online than asked: what is online is what the guest has.
	require.Equal(t, int64(1000), effectiveMilli(1, 1500, true))
}

func spec() Spec {
	return Spec{
		Name: "pg-1", Node: "node-a",
		Size: Size{VCPUMilli: 1500, MemoryBytes: 1 << 30},
		Bounds: Bounds{
			Min:  Size{VCPUMilli: 500, MemoryBytes: 512 << 20},
			Max:  Size{VCPUMilli: 4000, MemoryBytes: 4 << 30},
			Unit: Size{VCPUMilli: 250, MemoryBytes: 256 << 20},
		},
	}
}

func TestMachineForLaysOutBootAndHotplugRoom(t *testing.T) {
	m := machineFor(spec(), Machine{QEMU: "qemu-system-x86_64", Accel: "tcg", CPUModel: "qemu64"})
	require.Equal(t, 2, m.BootCPUs, "1.5 vCPUs boot with 2")
	require.Equal(t, 4, m.MaxCPUs)
	require.Equal(t, uint64(512<<20), m.BaseMemory)
	require.Equal(t, uint64(3584<<20), m.Region)
	require.Equal(t, uint64(512<<20), m.Requested)

	odd := spec()
	odd.Bounds.Min.MemoryBytes = 500<<20 + 1
	odd.Bounds.Max.MemoryBytes = 1000 << 20
	odd.Size.MemoryBytes = 700 << 20
	m = machineFor(odd, Machine{})
	require.Equal(t, uint64(502<<20), m.BaseMemory, "RAM rounds up to 2 MiB")
	require.Equal(t, uint64(498<<20), m.Region)
	require.Equal(t, uint64(198<<20), m.Requested)
	require.Equal(t, uint64(0), m.requestedFor(100<<20))
	require.Equal(t, m.Region, m.requestedFor(8<<30), "never beyond the region")
}

func TestArgsBuildTheAgreedCommandLine(t *testing.T) {
	m := machineFor(spec(), Machine{QEMU: "/usr/bin/qemu-system-x86_64", Kernel: "/k/vmlinux", Initrd: "/k/initrd", Accel: "tcg", CPUModel: "qemu64"})
	args := m.Args("/run/pg-1@node-a", false)
	line := strings.Join(args, " ")
	for _, want := range []string{
		"/usr/bin/qemu-system-x86_64 -name pg-1 -machine q35 -accel tcg -cpu qemu64",
		"-smp cpus=2,maxcpus=4",
		"-m 536870912b,maxmem=4294967296b",
		"-kernel /k/vmlinux -initrd /k/initrd -append " + KernelArgs,
		"-nodefaults -no-user-config -no-reboot -display none",
		"-daemonize -pidfile /run/pg-1@node-a/pid",
		"-qmp unix:/run/pg-1@node-a/qmp.sock,server=on,wait=off",
		"-serial file:/run/pg-1@node-a/serial.log",
		"-chardev socket,id=agent0,path=/run/pg-1@node-a/agent.sock,server=on,wait=off -device virtserialport,chardev=agent0,name=org.vertigo.agent.0",
		"-object memory-backend-ram,id=vmem0,size=3758096384b -device virtio-mem-pci,id=vm0,memdev=vmem0,bus=rp1,requested-size=536870912",
	} {
		require.Contains(t, line, want)
	}
	require.NotContains(t, line, "-incoming")
	require.NotContains(t, line, "-netdev")
	// The kernel command line is one argument.
	require.Equal(t, KernelArgs, args[slices.Index(args, "-append")+1])

	incoming := m.Args("/run/pg-1@node-b", true)
	require.Equal(t, []string{"-incoming", "defer", "-S"}, incoming[len(incoming)-3:], "a destination waits for the stream, then for cont")
}

func TestArgsLeaveOutWhatTheBoundsDoNotNeed(t *testing.T) {
	fixed := spec()
	fixed.Bounds.Max.MemoryBytes = fixed.Bounds.Min.MemoryBytes
	fixed.Size.MemoryBytes = fixed.Bounds.Min.MemoryBytes
	line := strings.Join(machineFor(fixed, Machine{}).Args("/d", false), " ")
	require.Contains(t, line, "-m 536870912b -kernel")
	require.NotContains(t, line, "virtio-mem")
	require.NotContains(t, line, "-drive")
}

func TestArgsGiveTheNICAndTheDisk(t *testing.T) {
	s := nicSpec()
	m := machineFor(s, Machine{})
	m.Disk = "/run/disks/pg-1.qcow2"
	args := m.Args("/d", false)
	line := strings.Join(args, " ")
	require.Contains(t, line, "-netdev tap,id=net0,fd=3 -device virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56",
		"QEMU takes the tap the plugin opened in its namespace as descriptor 3")
	require.NotContains(t, line, "tap-pg-1", "QEMU never opens the tap by name: it may be in another namespace")
	require.Contains(t, line, "-drive file=/run/disks/pg-1.qcow2,format=qcow2,if=none,id=disk0,cache=none,aio=native -device virtio-blk-pci,drive=disk0")
	require.Equal(t, KernelArgs+" vertigo.ip=10.77.0.5/24 vertigo.gw=10.77.0.1", args[slices.Index(args, "-append")+1])

	s.Gateway = ""
	m = machineFor(s, Machine{})
	require.Equal(t, KernelArgs+" vertigo.ip=10.77.0.5/24", m.kernelArgs())
}

func nicSpec() Spec {
	s := spec()
	s.Tap, s.MAC, s.NetNS, s.IPCIDR, s.Gateway = "tap-pg-1", "52:54:00:12:34:56", "vertigo-node-a", "10.77.0.5/24", "10.77.0.1"
	return s
}

func TestSpecValidationNamesTheField(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*Spec)
		want   string
	}{
		"name":      {func(s *Spec) { s.Name = "../etc" }, "spec.name:"},
		"node":      {func(s *Spec) { s.Node = "" }, "spec.node:"},
		"min vcpus": {func(s *Spec) { s.Bounds.Min.VCPUMilli = 0 }, "spec.bounds.min.vcpu_milli: must be > 0"},
		"min mem":   {func(s *Spec) { s.Bounds.Min.MemoryBytes = 0 }, "spec.bounds.min.memory_bytes: must be > 0"},
		"max vcpus": {func(s *Spec) { s.Bounds.Max.VCPUMilli = 400 }, "spec.bounds.max.vcpu_milli: 400 is below min 500"},
		"max mem":   {func(s *Spec) { s.Bounds.Max.MemoryBytes = 1 }, "spec.bounds.max.memory_bytes"},
		"too many":  {func(s *Spec) { s.Bounds.Max.VCPUMilli = 300000 }, "more than the 255 vCPUs"},
		"size cpu":  {func(s *Spec) { s.Size.VCPUMilli = 5000 }, "spec.size.vcpu_milli: 5000 is outside the bounds 500..4000"},
		"size mem":  {func(s *Spec) { s.Size.MemoryBytes = 1 }, "spec.size.memory_bytes: 1 is outside the bounds"},
		"tap":       {func(s *Spec) { s.Tap = "tap0" }, "spec.mac: tap and mac go together"},
		"image":     {func(s *Spec) { s.Image = "../pg" }, "spec.image:"},
	} {
		t.Run(name, func(t *testing.T) {
			s := spec()
			tc.mutate(&s)
			err := s.Validate()
			require.ErrorIs(t, err, ErrInvalid)
			require.ErrorContains(t, err, tc.want)
		})
	}
	require.NoError(t, spec().Validate())
}

func TestNICValidationNamesTheField(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*Spec)
		want   string
	}{
		"mac without tap":     {func(s *Spec) { s.Tap = "" }, "spec.mac: tap and mac go together"},
		"address without tap": {func(s *Spec) { s.Tap, s.MAC = "", "" }, "needs spec.tap"},
		"long tap":            {func(s *Spec) { s.Tap = "tap-0123456789ab" }, "spec.tap: \"tap-0123456789ab\" is not an interface name"},
		"tap with slash":      {func(s *Spec) { s.Tap = "a/b" }, "spec.tap:"},
		"netns path":          {func(s *Spec) { s.NetNS = "../ns" }, "spec.netns: \"../ns\" is not a network namespace name"},
		"mac syntax":          {func(s *Spec) { s.MAC = "52:54:00:12:34:56,id=x" }, "spec.mac: want six colon-separated hex bytes"},
		"mac dashes":          {func(s *Spec) { s.MAC = "52-54-00-12-34-56" }, "spec.mac: want six colon-separated hex bytes"},
		"multicast mac":       {func(s *Spec) { s.MAC = "01:00:5e:00:00:01" }, "spec.mac: 01:00:5e:00:00:01 is a multicast address"},
		"address syntax":      {func(s *Spec) { s.IPCIDR = "10.77.0.5" }, "spec.ip_cidr: want an address with its prefix length"},
		"gateway syntax":      {func(s *Spec) { s.Gateway = "gw" }, "spec.gateway: want an address"},
		"gateway family":      {func(s *Spec) { s.Gateway = "fd00::1" }, "spec.gateway: fd00::1 is not of the family of spec.ip_cidr"},
		"gateway alone":       {func(s *Spec) { s.IPCIDR = "" }, "spec.gateway: \"10.77.0.1\" needs spec.ip_cidr"},
	} {
		t.Run(name, func(t *testing.T) {
			s := nicSpec()
			tc.mutate(&s)
			err := s.Validate()
			require.ErrorIs(t, err, ErrInvalid)
			require.ErrorContains(t, err, tc.want)
		})
	}
	require.NoError(t, nicSpec().Validate())
	s := nicSpec()
	s.NetNS, s.IPCIDR, s.Gateway = "", "", ""
	require.NoError(t, s.Validate(), "a NIC in the plugin's namespace, configured by the guest itself")
}

func TestSurvivorPrefersARunningRecordedQEMU(t *testing.T) {
	c := func(incoming bool, status string) candidate {
		return candidate{inst: &instance{rec: Record{Incoming: incoming}}, status: status}
	}
	for name, tc := range map[string]struct {
		cs   []candidate
		want int
	}{
		"one running":                      {[]candidate{c(false, "running")}, 0},
		"one paused source resumes":        {[]candidate{c(false, "postmigrate")}, 0},
		"migration finished without us":    {[]candidate{c(false, "postmigrate"), c(true, "running")}, 1},
		"migration interrupted":            {[]candidate{c(false, "running"), c(true, "inmigrate")}, 0},
		"paused source, waiting dest":      {[]candidate{c(true, "inmigrate"), c(false, "paused")}, 1},
		"recorded after takeover":          {[]candidate{c(false, "postmigrate"), c(false, "running")}, 1},
		"only a destination without guest": {[]candidate{c(true, "inmigrate")}, -1},
		"nothing":                          {nil, -1},
	} {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, survivor(tc.cs))
		})
	}
}
