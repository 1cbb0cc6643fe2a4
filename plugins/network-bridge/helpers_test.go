package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vertigo-autoscaler/vertigo/plugins/network-bridge/netdev"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
	"github.com/vertigo-autoscaler/vertigo/sdk/sdktest"
)

// needRoot skips kernel tests where namespaces cannot be made.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
}

var prefixes atomic.Int32

// testPrefix is unique to the test (and process), so parallel runs and
// other engineers' fleets never share a namespace.
func testPrefix(t *testing.T) string {
	t.Helper()
	prefix := fmt.Sprintf("netplug%d-%d-", os.Getpid(), prefixes.Add(1))
	t.Cleanup(func() {
		for _, ns := range namespaces(t, prefix) {
			require.NoError(t, netdev.DeleteNamespace(ns))
		}
		require.Empty(t, namespaces(t, prefix), "namespaces leaked")
	})
	return prefix
}

// namespaces lists the named namespaces that start with prefix.
func namespaces(t *testing.T, prefix string) []string {
	t.Helper()
	entries, err := os.ReadDir("/run/netns")
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// rootLinks names the links of the test's own namespace.
func rootLinks(t *testing.T) []string {
	t.Helper()
	links, err := netlink.LinkList()
	require.NoError(t, err)
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	return names
}

type fleet struct {
	t      *testing.T
	prefix string
	json   []byte
	p      *plugin
	net    pb.NetworkClient
}

// newFleet configures a plugin in namespaces mode with the test's prefix
// and config overrides, its state under a temporary directory.
func newFleet(t *testing.T, overrides string) *fleet {
	t.Helper()
	needRoot(t)
	prefix := testPrefix(t)
	cfg := fmt.Sprintf(`{"state_dir":%q,"netns_prefix":%q%s}`, filepath.Join(t.TempDir(), "net"), prefix, overrides)
	f := &fleet{t: t, prefix: prefix, json: []byte(cfg)}
	f.restart()
	return f
}

// restart replaces the plugin with a new instance on the same state, as a
// plugin process restarted by the host would be.
func (f *fleet) restart() {
	f.t.Helper()
	f.p = newPlugin(hclog.NewNullLogger())
	client := sdktest.Connect(f.t, f.p)
	require.NoError(f.t, client.Configure(context.Background(), f.json, sdk.APIVersions[0]))
	f.net = client.Network
}

func (f *fleet) setup(nodes ...string) {
	f.t.Helper()
	for _, n := range nodes {
		resp, err := f.net.SetupNode(context.Background(), &pb.SetupNodeRequest{Node: n})
		require.NoError(f.t, err)
		require.Equal(f.t, bridgeName, resp.GetBridge())
		require.Equal(f.t, f.prefix+n, resp.GetNetns())
	}
}

func (f *fleet) attach(vm, node string) *pb.Attachment {
	f.t.Helper()
	resp, err := f.net.AttachVM(context.Background(), &pb.AttachVMRequest{Vm: vm, Node: node})
	require.NoError(f.t, err)
	return resp.GetAttachment()
}

func (f *fleet) attachments() []*pb.Attachment {
	f.t.Helper()
	resp, err := f.net.ListAttachments(context.Background(), &pb.ListAttachmentsRequest{})
	require.NoError(f.t, err)
	return resp.GetAttachments()
}

// link describes a link that must exist.
func (f *fleet) link(ns, name string) netdev.Link {
	f.t.Helper()
	info, ok, err := netdev.LinkInfo(ns, name)
	require.NoError(f.t, err)
	require.True(f.t, ok, "%s missing in namespace %s", name, ns)
	return info
}

func (f *fleet) noLink(ns, name string) {
	f.t.Helper()
	_, ok, err := netdev.LinkInfo(ns, name)
	require.NoError(f.t, err)
	require.False(f.t, ok, "%s still in namespace %s", name, ns)
}

// fakeVM stands in for a guest, which cannot boot here: a namespace with a
// veth carrying the VM's MAC and address, its other end on a bridge where
// QEMU's tap would be, and an echo server.
type fakeVM struct {
	t  *testing.T
	ns string
	at *pb.Attachment
}

const (
	fakeDev  = "fv0"
	fakePort = "fvport"
	echoPort = 7007
)

// newFakeVM starts the VM's echo server in namespace ns, unplugged.
func newFakeVM(t *testing.T, ns string, at *pb.Attachment) *fakeVM {
	t.Helper()
	vm := &fakeVM{t: t, ns: ns, at: at}
	require.NoError(t, netdev.EnsureNamespace(ns))
	// A guest that moved stays silent until spoken to: no IPv6 chatter
	// may tell the overlay where it went, only Announce.
	require.NoError(t, netdev.Do(ns, func() error {
		for _, conf := range []string{"all", "default"} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+conf+"/disable_ipv6", []byte("1"), 0); err != nil {
				return err
			}
		}
		return nil
	}))
	var ln net.Listener
	require.NoError(t, netdev.Do(ns, func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", echoPort))
		return err
	}))
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return vm
}

// plugInto puts the VM's interface on the bridge of namespace ns, as the
// QEMU there would through its tap.
func (vm *fakeVM) plugInto(ns string) {
	t := vm.t
	t.Helper()
	require.NoError(t, netdev.DeleteLink(vm.ns, fakeDev))
	require.NoError(t, netdev.EnsureVeth(netdev.Veth{NS: vm.ns, Name: fakeDev, PeerNS: ns, PeerName: fakePort, PeerBridge: bridgeName, MTU: overlayMTU}))
	mac, err := net.ParseMAC(vm.at.GetMac())
	require.NoError(t, err)
	h, err := netlinkHandle(vm.ns)
	require.NoError(t, err)
	defer h.Close()
	l, err := h.LinkByName(fakeDev)
	require.NoError(t, err)
	require.NoError(t, h.LinkSetHardwareAddr(l, mac))
	addr, err := netlink.ParseAddr(vm.at.GetIpCidr())
	require.NoError(t, err)
	require.NoError(t, h.AddrReplace(l, addr))
}

// dial connects from namespace ns to the VM's echo server.
func dial(t *testing.T, ns string, at *pb.Attachment) *echoConn {
	t.Helper()
	ip, _, err := net.ParseCIDR(at.GetIpCidr())
	require.NoError(t, err)
	var c net.Conn
	require.NoError(t, netdev.Do(ns, func() (err error) {
		c, err = net.DialTimeout("tcp", net.JoinHostPort(ip.String(), fmt.Sprint(echoPort)), 10*time.Second)
		return err
	}))
	t.Cleanup(func() { c.Close() })
	return &echoConn{t: t, c: c, r: bufio.NewReader(c)}
}

type echoConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

// roundTrip sends a line and expects it back within a deadline that only
// a broken path reaches.
func (e *echoConn) roundTrip(line string) {
	e.t.Helper()
	require.NoError(e.t, e.c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err := io.WriteString(e.c, line+"\n")
	require.NoError(e.t, err)
	got, err := e.r.ReadString('\n')
	require.NoError(e.t, err)
	require.Equal(e.t, line+"\n", got)
}

func netlinkHandle(ns string) (*netlink.Handle, error) {
	h, err := netns.GetFromName(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return netlink.NewHandleAt(h)
}
