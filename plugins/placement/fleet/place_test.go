package fleet

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPlaceRanksNodes(t *testing.T) {
	// After placing 2 vCPU/4GiB (watermark 0.9):
	//   big:   16/64 -> 14/60 free (headroom 0.875), under;
	//   mid:   8/16, 2/2 used -> 4/10 free (0.5), under;
	//   tight: 8/16, 4/8 used -> 2/4 free (0.25), under;
	//   hot:   8/16, 6/5 used -> 0/7 free (0), above its watermark, so
	//          not chosen though pack would score it best.
	nodes := map[string]Size{"big": sz(16, 64), "mid": sz(8, 16), "tight": sz(8, 16), "hot": sz(8, 16)}
	vms := []VM{
		{Name: "m", Node: "mid", Reserved: sz(2, 2)},
		{Name: "t", Node: "tight", Reserved: sz(4, 8)},
		{Name: "h", Node: "hot", Reserved: sz(6, 5)},
	}
	cases := map[Strategy]Placement{
		Spread: {Node: "big", Score: 0.875, Reason: "placed on node big, at or under its watermark (spread score 0.875)"},
		Pack:   {Node: "tight", Score: 0.75, Reason: "placed on node tight, at or under its watermark (pack score 0.750)"},
	}
	for strategy, want := range cases {
		t.Run(string(strategy), func(t *testing.T) {
			f := fleetOf(t, nodes, vms...)
			got, err := f.Place("new", sz(2, 4), unit, strategy)
			require.NoError(t, err)
			require.Equal(t, want, got)
			requireInvariants(t, f)
			require.Equal(t, VM{Name: "new", Node: want.Node, Reserved: sz(2, 4), Unit: unit}, *f.vms["new"], "placing reserves at once")

			placed := f.Snapshot()
			again, err := f.Place("new", sz(2, 4), unit, strategy)
			require.NoError(t, err)
			require.Equal(t, want.Node, again.Node, "placing a placed VM returns its node")
			require.Equal(t, "already placed on node "+want.Node, again.Reason)
			require.Equal(t, placed, f.Snapshot(), "and changes nothing")
			requireInvariants(t, f)
		})
	}
}

func TestPlacePrefersStayingUnderTheWatermark(t *testing.T) {
	// Pack would pick "hot" (the tighter fit) but it ends above its watermark.
	f := fleetOf(t, map[string]Size{"hot": sz(10, 10), "cool": sz(100, 100)}, VM{Name: "h", Node: "hot", Reserved: sz(8, 8)})
	got, err := f.Place("new", sz(2, 2), unit, Pack)
	require.NoError(t, err)
	require.Equal(t, "cool", got.Node)

	// When no node stays under, the best that fits still takes it.
	f = fleetOf(t, map[string]Size{"hot": sz(10, 10)}, VM{Name: "h", Node: "hot", Reserved: sz(8, 8)})
	got, err = f.Place("new", sz(2, 2), unit, Spread)
	require.NoError(t, err)
	require.Equal(t, Placement{Node: "hot", Score: 0, Reason: "placed on node hot, above its watermark, as no node stays under it (spread score 0.000)"}, got)
	requireInvariants(t, f)
}

func TestPlaceBreaksTiesByName(t *testing.T) {
	for _, strategy := range []Strategy{Spread, Pack} {
		f := fleetOf(t, map[string]Size{"n3": sz(8, 8), "n1": sz(8, 8), "n2": sz(8, 8)})
		got, err := f.Place("a", sz(1, 1), unit, strategy)
		require.NoError(t, err)
		require.Equal(t, "n1", got.Node, strategy)
	}
}

func TestPlaceWhenNothingFits(t *testing.T) {
	f := fleetOf(t, map[string]Size{"n1": sz(8, 8), "n2": sz(2, 32), "n3": sz(4, 4)})
	got, err := f.Place("a", sz(4, 16), unit, Spread)
	require.NoError(t, err)
	require.Equal(t, Placement{Reason: "fits on no node: of 3 nodes, 1 lack the vCPU and 2 the memory for 4 vCPU/16GiB"}, got)
	require.Empty(t, f.Snapshot().VMs)

	got, err = New().Place("a", sz(1, 1), unit, Spread)
	require.NoError(t, err)
	require.Equal(t, Placement{Reason: "no nodes"}, got)
}

func TestPlaceRefusesMalformedRequests(t *testing.T) {
	cases := map[string]struct {
		vm         string
		size, unit Size
		want       string
	}{
		"no vm":            {"", sz(1, 1), unit, "vm: must not be empty"},
		"negative vCPU":    {"a", Size{VCPUMilli: -1}, unit, "size.vcpu_milli: must be >= 0"},
		"zero vCPU unit":   {"a", sz(1, 1), Size{MemoryBytes: 1}, "unit.vcpu_milli: must be > 0"},
		"zero memory unit": {"a", sz(1, 1), Size{VCPUMilli: 1}, "unit.memory_bytes: must be > 0"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			f := fleetOf(t, map[string]Size{"n1": sz(8, 8)})
			_, err := f.Place(c.vm, c.size, c.unit, Spread)
			requireInvalid(t, err, c.want)
			require.Empty(t, f.Snapshot().VMs)
		})
	}
}
