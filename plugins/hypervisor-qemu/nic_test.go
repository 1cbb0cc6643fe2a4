package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/vm"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

const testMAC = "52:54:00:7e:57:01"

// migrate runs a migration to its end and returns the last progress.
func migrate(t *testing.T, c *sdk.Client, req *pb.MigrateRequest) *pb.MigrationProgress {
	t.Helper()
	stream, err := c.Hypervisor.Migrate(within(t, 2*time.Minute), req)
	require.NoError(t, err)
	var last *pb.MigrationProgress
	for {
		pr, err := stream.Recv()
		if err == io.EOF {
			return last
		}
		require.NoError(t, err)
		last = pr
	}
}

// migrateError is the error a refused migration ends with.
func migrateError(t *testing.T, c *sdk.Client, req *pb.MigrateRequest) error {
	t.Helper()
	stream, err := c.Hypervisor.Migrate(within(t, 10*time.Second), req)
	require.NoError(t, err)
	_, err = stream.Recv()
	require.Error(t, err)
	return err
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	info, err := os.Stat(path)
	require.NoError(t, err)
	return info.Sys().(*syscall.Stat_t).Ino
}

func record(t *testing.T, dir string) vm.Record {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "spec.json"))
	require.NoError(t, err)
	var rec vm.Record
	require.NoError(t, json.Unmarshal(b, &rec))
	return rec
}

// TestTCPSurvivesMigrationAndResize boots a VM with a NIC on a tap in a
// node's namespace and a disk, holds a TCP connection to its echo service
// from a client namespace, and streams through a resize up, a migration to
// the other tap and a resize down: every byte comes back once, in order,
// and the connection never breaks. Then, with the guest silent, a
// migration with skip_announce leaves the bridge ignorant of the VM's new
// port, and one without teaches it at once.
func TestTCPSurvivesMigrationAndResize(t *testing.T) {
	lab := newNetLab(t)
	run := runDir(t)
	images := diskImages(t)
	// Six engineers' QEMUs share two cores: a starved guest is slow, not
	// wrong.
	_, c := inProcess(t, configWith(t, run, map[string]any{"images_dir": images, "resize_timeout": int64(time.Minute)}))
	const name = "nic"
	spec := testSpec(name)
	spec.Tap, spec.Netns, spec.Mac = lab.taps[0], lab.ns, testMAC
	spec.IpCidr, spec.Gateway = lab.subnet+".5/24", lab.gateway
	spec.Image = "disk"
	addr := net.JoinHostPort(lab.subnet+".5", "7")
	disk := vm.DiskPath(run, name)

	started := time.Now()
	resp, err := c.Hypervisor.StartVM(within(t, 2*time.Minute), &pb.StartVMRequest{Spec: spec})
	require.NoError(t, err)
	t.Logf("StartVM with a NIC and a disk: %v", time.Since(started).Round(time.Millisecond))
	src := handleOf(t, resp.GetStatus())
	rec := record(t, src.Dir)
	require.Equal(t, []string{lab.taps[0], lab.ns, testMAC, disk}, []string{rec.Machine.Tap, rec.Machine.NetNS, rec.Machine.MAC, rec.Machine.Disk},
		"the port and the disk are recorded for recovery and migration")
	out, err := exec.Command("qemu-img", "info", "-U", disk).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "backing file: "+filepath.Join(images, "guest-disk", "rootfs.img"))
	diskInode := inode(t, disk)

	s := startEchoStream(lab.dial(t, addr))
	defer s.conn.Close()
	s.flowing(t, 0, "connecting")
	s.phase()

	err = migrateError(t, c, &pb.MigrateRequest{Name: name, TargetNode: "node-b"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.ErrorContains(t, err, "target_tap: nic has a NIC: the migration needs its tap on node-b")

	mark := s.receivedBytes()
	grown, err := c.Hypervisor.Resize(within(t, time.Minute), &pb.ResizeRequest{Name: name, Target: &pb.Size{VcpuMilli: 2000, MemoryBytes: 1024 * mib}})
	require.NoError(t, err)
	require.Equal(t, int64(2000), grown.GetActual().GetVcpuMilli())
	s.flowing(t, mark, "growing")
	t.Logf("longest stall while growing: %v", s.phase().Round(time.Millisecond))

	mark = s.receivedBytes()
	last := migrate(t, c, &pb.MigrateRequest{Name: name, TargetNode: "node-b", TargetTap: lab.taps[1], TargetNetns: lab.ns})
	require.Equal(t, pb.MigrationPhase_MIGRATION_PHASE_COMPLETED, last.GetPhase(), last.GetMessage())
	t.Logf("migration under TCP load: %v in all, downtime %v", time.Duration(last.GetElapsedNanos()).Round(time.Millisecond), time.Duration(last.GetDowntimeNanos()))
	s.flowing(t, mark, "the migration")
	t.Logf("longest stall through the migration: %v", s.phase().Round(time.Millisecond))
	require.Equal(t, lab.taps[1], lab.fdbPort(t, testMAC), "the bridge forwards to the new port")
	listed, err := c.Hypervisor.ListVMs(within(t, 5*time.Second), &pb.ListVMsRequest{})
	require.NoError(t, err)
	dst := handleOf(t, listed.GetVms()[0])
	require.Equal(t, filepath.Join(run, "nic@node-b"), dst.Dir)
	require.Equal(t, lab.taps[1], record(t, dst.Dir).Spec.Tap, "the destination's port is the VM's now")
	require.Equal(t, diskInode, inode(t, disk), "the destination opened the same disk")
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", dst.PID))
	require.NoError(t, err)
	require.Contains(t, string(cmdline), "file="+disk+",")

	mark = s.receivedBytes()
	shrunk, err := c.Hypervisor.Resize(within(t, time.Minute), &pb.ResizeRequest{Name: name, Target: &pb.Size{VcpuMilli: 1000, MemoryBytes: 512 * mib}, Force: true})
	require.NoError(t, err)
	require.Equal(t, int64(1000), shrunk.GetActual().GetVcpuMilli())
	s.flowing(t, mark, "shrinking")
	t.Logf("longest stall while shrinking: %v", s.phase().Round(time.Millisecond))

	bytes, stall := s.finish(t)
	t.Logf("echo stream: %d KiB back exactly, longest stall %v (through a resize up, a migration and a resize down)", bytes>>10, stall.Round(time.Millisecond))
	require.NoError(t, s.conn.Close())

	// Only the announcements tell the network where the VM went: the guest
	// itself may say something at any time (IPv6 router solicitations).
	// Two watches, not one variable reused: require.Never's last check
	// may still be running when it returns.
	silent := lab.watchAnnouncements(t, lab.taps[0], testMAC)
	last = migrate(t, c, &pb.MigrateRequest{Name: name, TargetNode: "node-a", TargetTap: lab.taps[0], TargetNetns: lab.ns, SkipAnnounce: true})
	require.Equal(t, pb.MigrationPhase_MIGRATION_PHASE_COMPLETED, last.GetPhase(), last.GetMessage())
	// QEMU's announcement rounds span 550 ms from the switch-over.
	require.Never(t, func() bool { return silent.count.Load() > 0 }, 1500*time.Millisecond, 50*time.Millisecond,
		"skip_announce: nothing announced the VM")
	silent.close()

	watch := lab.watchAnnouncements(t, lab.taps[1], testMAC)
	last = migrate(t, c, &pb.MigrateRequest{Name: name, TargetNode: "node-b", TargetTap: lab.taps[1], TargetNetns: lab.ns})
	require.Equal(t, pb.MigrationPhase_MIGRATION_PHASE_COMPLETED, last.GetPhase(), last.GetMessage())
	ended := time.Now()
	require.Eventually(t, func() bool { return watch.count.Load() > 0 }, 2*time.Second, 10*time.Millisecond,
		"the destination announced the VM")
	require.Eventually(t, func() bool { return lab.fdbPort(t, testMAC) == lab.taps[1] }, 2*time.Second, 10*time.Millisecond,
		"the bridge learnt the new port")
	t.Logf("the bridge knew the new port %v after the migration ended; %d announcements so far", time.Since(ended).Round(time.Millisecond), watch.count.Load())

	again := lab.dial(t, addr)
	defer again.Close()
	_, err = again.Write([]byte("still here"))
	require.NoError(t, err)
	got := make([]byte, len("still here"))
	require.NoError(t, again.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = io.ReadFull(again, got)
	require.NoError(t, err)
	require.Equal(t, "still here", string(got))
	require.Equal(t, diskInode, inode(t, disk), "three migrations, one disk")

	_, err = c.Hypervisor.StopVM(within(t, time.Minute), &pb.StopVMRequest{Name: name})
	require.NoError(t, err)
	require.NoFileExists(t, disk, "a stopped VM's disk is deleted")
}

// TestImageAndNICRequestsAreChecked: an unknown image, a tap that is not
// there and a migration port for a VM without a NIC are refused, naming
// the field, and leave nothing behind.
func TestImageAndNICRequestsAreChecked(t *testing.T) {
	run := runDir(t)
	_, c := inProcess(t, configWith(t, run, map[string]any{"images_dir": diskImages(t)}))
	ctx := within(t, 30*time.Second)
	for name, tc := range map[string]struct {
		mutate func(*pb.VMSpec)
		want   string
	}{
		"unknown image": {func(s *pb.VMSpec) { s.Image = "nope" }, `spec.image: no image "nope": stat `},
		"image path":    {func(s *pb.VMSpec) { s.Image = "../guest" }, `spec.image: "../guest" must be`},
		"missing tap": {func(s *pb.VMSpec) { s.Image, s.Tap, s.Mac = "disk", "qnmissing0", testMAC },
			`spec.tap: tap "qnmissing0" in the plugin's network namespace: Link not found`},
		"not a tap":     {func(s *pb.VMSpec) { s.Tap, s.Mac = "lo", testMAC }, `spec.tap: tap "lo" in the plugin's network namespace: lo is a device, not a tap`},
		"missing netns": {func(s *pb.VMSpec) { s.Tap, s.Mac, s.Netns = "tap0", testMAC, "qemu-nic-none" }, `spec.tap: tap "tap0" in network namespace qemu-nic-none: opening the namespace: no such file or directory`},
		"address alone": {func(s *pb.VMSpec) { s.IpCidr = "10.0.0.5/24" }, `spec.ip_cidr: "10.0.0.5/24" needs spec.tap`},
	} {
		t.Run(name, func(t *testing.T) {
			spec := testSpec("checked")
			tc.mutate(spec)
			_, err := c.Hypervisor.StartVM(ctx, &pb.StartVMRequest{Spec: spec})
			require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
			require.ErrorContains(t, err, tc.want)
		})
	}
	require.NoFileExists(t, vm.DiskPath(run, "checked"), "a disk made for a VM that did not start is removed")
	entries, err := filepath.Glob(filepath.Join(run, "*@*"))
	require.NoError(t, err)
	require.Empty(t, entries, "no QEMU was started")
	listed, err := c.Hypervisor.ListVMs(ctx, &pb.ListVMsRequest{})
	require.NoError(t, err)
	require.Empty(t, listed.GetVms())
}
