package main

import (
	"context"
	"net"
	"net/netip"
	"os"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/vertigo-autoscaler/vertigo/plugins/network-bridge/netdev"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// The test that matters for this plugin: a client in its namespace reaches
// a VM by its address on node a, keeps its TCP connection while the VM
// moves to node b, and a restarted plugin keeps everything.
func TestClientReachesVMAcrossMigrationAndRestart(t *testing.T) {
	before := rootLinks(t)
	f := newFleet(t, `,"subnet":"10.231.0.0/24","underlay_subnet":"10.232.0.0/24","vni":4242`)
	f.setup("a", "b")
	nsA, nsB, client := f.prefix+"a", f.prefix+"b", f.prefix+"client"
	underlayA, underlayB, underlayClient := f.underlay("a"), f.underlay("b"), f.p.state.ClientUnderlay

	// Every VTEP floods to every other one.
	for ns, want := range map[string][]netip.Addr{
		nsA:    {underlayB, underlayClient},
		nsB:    {underlayA, underlayClient},
		client: {underlayA, underlayB},
	} {
		got, err := netdev.Flood(ns, vxlanName)
		require.NoError(t, err)
		require.ElementsMatch(t, want, got, ns)
		require.Equal(t, overlayMTU, f.link(ns, vxlanName).MTU, "guests keep a 1500-byte MTU")
	}

	at := f.attach("db-1", "a")
	require.Equal(t, "10.231.0.2/24", at.GetIpCidr(), "the gateway .1 is the client's")
	require.Equal(t, "10.231.0.1", at.GetGateway())
	require.Equal(t, nsA, at.GetNetns())
	require.LessOrEqual(t, len(at.GetTap()), 15)
	tap := f.link(nsA, at.GetTap())
	require.Equal(t, "tuntap", tap.Type)
	require.Equal(t, bridgeName, tap.Master)
	requireTapOpens(t, nsA, at.GetTap())
	again := f.attach("db-1", "a")
	require.Equal(t, at.String(), again.String(), "AttachVM is idempotent")
	require.Equal(t, tap.Index, f.link(nsA, at.GetTap()).Index, "the tap is kept, not re-created")

	vm := newFakeVM(t, f.prefix+"fakevm", at)
	vm.plugInto(nsA)
	conn := dial(t, client, at)
	conn.roundTrip("on node a")
	mac, err := net.ParseMAC(at.GetMac())
	require.NoError(t, err)
	requireLearned(t, client, mac, underlayA)

	target, err := f.net.PrepareMigration(context.Background(), &pb.PrepareMigrationRequest{Vm: "db-1", TargetNode: "b"})
	require.NoError(t, err)
	tat := target.GetAttachment()
	require.Equal(t, nsB, tat.GetNetns())
	for _, same := range [][2]string{{at.GetMac(), tat.GetMac()}, {at.GetIpCidr(), tat.GetIpCidr()}, {at.GetTap(), tat.GetTap()}} {
		require.Equal(t, same[0], same[1], "the VM keeps its identity on the target")
	}
	require.Equal(t, bridgeName, f.link(nsB, tat.GetTap()).Master)
	require.Len(t, f.attachments(), 2, "both ports exist during the migration")

	vm.plugInto(nsB)
	done, err := f.net.CompleteMigration(context.Background(), &pb.CompleteMigrationRequest{Vm: "db-1", SourceNode: "a", TargetNode: "b", Succeeded: true})
	require.NoError(t, err)
	require.Equal(t, "b", done.GetAttachment().GetNode())
	f.noLink(nsA, at.GetTap())
	// The client still sends the VM's frames to node a: that is what
	// Announce is for.
	requireLearned(t, client, mac, underlayA)
	_, err = f.net.Announce(context.Background(), &pb.AnnounceRequest{Vm: "db-1", Node: "b"})
	require.NoError(t, err)
	entries, err := netdev.Learned(client, mac)
	require.NoError(t, err)
	require.Empty(t, entries, "no stale entry left on the client")

	conn.roundTrip("the same connection, on node b")
	requireLearned(t, client, mac, underlayB)
	dial(t, client, at).roundTrip("a new connection, on node b")

	// A restarted plugin keeps the VM's address and its tap.
	tapB := f.link(nsB, at.GetTap())
	f.restart()
	list := f.attachments()
	require.Len(t, list, 1)
	require.Equal(t, tat.String(), list[0].String())
	f.setup("a", "b")
	require.Equal(t, tat.String(), f.attach("db-1", "b").String())
	require.Equal(t, tapB.Index, f.link(nsB, at.GetTap()).Index, "re-setup keeps the tap")
	require.Equal(t, underlayA, f.underlay("a"), "a node keeps its underlay address")
	conn.roundTrip("after the plugin restarted")

	_, err = f.net.DetachVM(context.Background(), &pb.DetachVMRequest{Vm: "db-1", Node: "b"})
	require.NoError(t, err)
	f.noLink(nsB, at.GetTap())
	require.Empty(t, f.attachments())
	_, err = f.net.DetachVM(context.Background(), &pb.DetachVMRequest{Vm: "db-1", Node: "b"})
	require.NoError(t, err, "DetachVM is idempotent")

	t.Cleanup(func() {
		require.ElementsMatch(t, before, rootLinks(t), "no link leaked into the test's namespace")
	})
}

// underlay is a set-up node's VTEP address.
func (f *fleet) underlay(node string) netip.Addr {
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	return f.p.state.Nodes[node].Underlay
}

// requireLearned checks that the VXLAN device in ns sends mac's frames to
// the VTEP at remote.
func requireLearned(t *testing.T, ns string, mac net.HardwareAddr, remote netip.Addr) {
	t.Helper()
	entries, err := netdev.Learned(ns, mac)
	require.NoError(t, err)
	require.Contains(t, entries, netdev.Entry{Dev: vxlanName, Remote: remote})
}

// requireTapOpens attaches to the tap by name as QEMU does, which fails
// while anything else holds it (say, a descriptor the plugin forgot).
func requireTapOpens(t *testing.T, ns, name string) {
	t.Helper()
	require.NoError(t, netdev.Do(ns, func() error {
		fd, err := unix.Open("/dev/net/tun", os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		var req struct {
			name  [unix.IFNAMSIZ]byte
			flags uint16
			_     [22]byte
		}
		copy(req.name[:], name)
		req.flags = unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); errno != 0 {
			return errno
		}
		return nil
	}))
}
