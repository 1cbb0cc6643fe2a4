package ipam

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func mustPool(t *testing.T, cidr string) Pool {
	t.Helper()
	p, err := ParsePool(cidr)
	require.NoError(t, err)
	return p
}

func TestParsePoolRejectsWhatCannotServe(t *testing.T) {
	for cidr, want := range map[string]string{
		"10.77.0.0":     "not a CIDR",
		"10.77.0.0/31":  "too small",
		"10.77.0.0/32":  "too small",
		"fd00::/64":     "not an IPv4 subnet",
		"10.77.0.5/24":  "has host bits set; the subnet is 10.77.0.0/24",
		"10.77.0.0/24x": "not a CIDR",
		"300.77.0.0/24": "not a CIDR",
	} {
		_, err := ParsePool(cidr)
		require.ErrorContains(t, err, want, cidr)
	}
	p := mustPool(t, "10.77.0.0/30")
	require.Equal(t, netip.MustParseAddr("10.77.0.1"), p.First())
	require.Equal(t, "10.77.0.2/30", p.CIDR(netip.MustParseAddr("10.77.0.2")))
}

func TestAddressesSkipNetworkBroadcastAndReservedUntilExhausted(t *testing.T) {
	pool := mustPool(t, "10.9.0.0/29") // hosts .1 to .6
	pool = pool.Reserve(pool.First())
	s := New()
	var got []string
	for i := range 5 {
		vm, err := s.AddVM("vm"+string(rune('a'+i)), "n", pool)
		require.NoError(t, err)
		got = append(got, vm.IP.String())
	}
	require.Equal(t, []string{"10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"}, got)
	_, err := s.AddVM("one-too-many", "n", pool)
	require.ErrorIs(t, err, ErrExhausted)
	require.NotContains(t, s.VMs, "one-too-many")
}

func TestFreedAddressIsReusedLast(t *testing.T) {
	pool := mustPool(t, "10.9.0.0/29")
	pool = pool.Reserve(pool.First())
	s := New()
	for _, n := range []string{"a", "b", "c"} {
		_, err := s.AddVM(n, "n", pool)
		require.NoError(t, err)
	}
	delete(s.VMs, "a") // frees .2
	d, err := s.AddVM("d", "n", pool)
	require.NoError(t, err)
	require.Equal(t, "10.9.0.5", d.IP.String(), "the search goes on after the last address handed out")
	for _, n := range []string{"e", "f"} {
		_, err := s.AddVM(n, "n", pool)
		require.NoError(t, err)
	}
	require.Equal(t, "10.9.0.2", s.VMs["f"].IP.String(), "the freed address comes back after a wrap")
}

func TestStateRoundTripsAndNeverHandsAnAddressOutTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	pool := mustPool(t, "10.9.0.0/28")
	pool = pool.Reserve(pool.First())
	underlay := mustPool(t, "10.254.0.0/24")

	s := New()
	a, err := s.AllocateUnderlay(underlay)
	require.NoError(t, err)
	s.Nodes["node-a"] = Node{Underlay: a}
	for _, n := range []string{"db-1", "db-2", "db-3"} {
		_, err := s.AddVM(n, "node-a", pool)
		require.NoError(t, err)
	}
	s.VMs["db-2"].Target = "node-b"
	require.NoError(t, s.Save(path))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	back, err := Load(path)
	require.NoError(t, err)
	require.Equal(t, s, back)
	require.Equal(t, []string{"node-a", "node-b"}, back.VMs["db-2"].Ports())

	// A reloaded state carries on where the old one stopped.
	seen := map[netip.Addr]string{}
	for _, n := range back.VMNames() {
		seen[back.VMs[n].IP] = n
	}
	for i := range 10 { // a /28 has 13 host addresses besides the gateway
		vm, err := back.AddVM("more-"+string(rune('a'+i)), "node-a", pool)
		require.NoError(t, err)
		require.NotContains(t, seen, vm.IP, "address handed out twice")
		seen[vm.IP] = "more"
	}
	_, err = back.AddVM("full", "node-a", pool)
	require.ErrorIs(t, err, ErrExhausted)

	u, err := back.AllocateUnderlay(underlay)
	require.NoError(t, err)
	require.NotEqual(t, a, u)

	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file is left behind")
}

func TestLoadMissingIsEmptyAndCorruptIsAnError(t *testing.T) {
	dir := t.TempDir()
	s, err := Load(filepath.Join(dir, "none.json"))
	require.NoError(t, err)
	require.Empty(t, s.VMs)
	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte("{nodes"), 0o600))
	_, err = Load(bad)
	require.ErrorContains(t, err, bad)
}

func TestMACAndTapAreStableLocalAndCollisionFree(t *testing.T) {
	none := func(string) bool { return false }
	mac, err := MAC("db-1", none)
	require.NoError(t, err)
	again, err := MAC("db-1", none)
	require.NoError(t, err)
	require.Equal(t, mac, again)
	hw, err := net.ParseMAC(mac)
	require.NoError(t, err)
	require.Equal(t, byte(0x02), hw[0]&0x03, "locally administered unicast")

	other, err := MAC("db-1", func(m string) bool { return m == mac })
	require.NoError(t, err)
	require.NotEqual(t, mac, other)

	tap, err := TapName("a-very-long-vm-name-that-would-never-fit-in-ifnamsiz", none)
	require.NoError(t, err)
	require.LessOrEqual(t, len(tap), 15)
	require.True(t, strings.HasPrefix(tap, TapPrefix))
	tap2, err := TapName("a-very-long-vm-name-that-would-never-fit-in-ifnamsiz", func(n string) bool { return n == tap })
	require.NoError(t, err)
	require.NotEqual(t, tap, tap2)

	_, err = MAC("x", func(string) bool { return true })
	require.ErrorContains(t, err, "no free MAC")
}

func TestOutsideNamesVMsANewSubnetWouldOrphan(t *testing.T) {
	s := New()
	_, err := s.AddVM("db-1", "n", mustPool(t, "10.9.0.0/24"))
	require.NoError(t, err)
	require.Empty(t, s.Outside(mustPool(t, "10.9.0.0/16")))
	require.Equal(t, []string{"db-1"}, s.Outside(mustPool(t, "10.8.0.0/24")))
}
