package fleet

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func growOne(t *testing.T, f *Fleet, vm string, want Size) Grant {
	t.Helper()
	grants, err := f.Grow([]Ask{{VM: vm, Want: want}})
	require.NoError(t, err)
	require.Len(t, grants, 1)
	requireInvariants(t, f)
	return grants[0]
}

func TestGrow(t *testing.T) {
	cases := map[string]struct {
		reserved, unit, want Size
		grant                Grant
	}{
		"in full": {
			reserved: sz(2, 4), want: sz(4, 8),
			grant: Grant{Granted: sz(4, 8), Reason: "granted in full on node n1"},
		},
		"whole units of vCPU when want does not fit": {
			reserved: sz(2, 4), unit: Size{VCPUMilli: 1500, MemoryBytes: gib}, want: sz(8, 4),
			grant: Grant{Granted: Size{VCPUMilli: 5000, MemoryBytes: 4 * gib}, Partial: true, Reason: "node n1 is short of vCPU (4 vCPU free, unit 1.5 vCPU)"},
		},
		"exactly want when it fits, though not a whole number of units away": {
			reserved: sz(2, 4), unit: sz(3, 3), want: Size{VCPUMilli: 3500, MemoryBytes: 5 * gib},
			grant: Grant{Granted: Size{VCPUMilli: 3500, MemoryBytes: 5 * gib}, Reason: "granted in full on node n1"},
		},
		"memory limited": {
			reserved: sz(2, 4), unit: sz(1, 3), want: sz(3, 16),
			grant: Grant{Granted: sz(3, 10), Partial: true, Reason: "node n1 is short of memory (8GiB free, unit 3GiB)"},
		},
		"both limited": {
			reserved: sz(2, 4), unit: sz(3, 3), want: sz(12, 20),
			grant: Grant{Granted: sz(5, 10), Partial: true, Reason: "node n1 is short of vCPU (4 vCPU free, unit 3 vCPU) and memory (8GiB free, unit 3GiB)"},
		},
		"unit larger than what is free": {
			reserved: sz(2, 4), unit: sz(5, 1), want: sz(8, 4),
			grant: Grant{Granted: sz(2, 4), Partial: true, Reason: "node n1 is short of vCPU (4 vCPU free, unit 5 vCPU)"},
		},
		"a dimension at or above want is left as it is": {
			reserved: sz(2, 4), want: sz(1, 6),
			grant: Grant{Granted: sz(2, 6), Reason: "granted in full on node n1"},
		},
		"nothing to grow": {
			reserved: sz(2, 4), want: sz(1, 4),
			grant: Grant{Granted: sz(2, 4), Reason: "nothing to grow: the reservation already covers want (decreases come through Apply)"},
		},
		"above the watermark, up to capacity": {
			reserved: sz(2, 4), want: sz(6, 12),
			grant: Grant{Granted: sz(6, 12), Reason: "granted in full on node n1"},
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			// n1: 8 vCPU/16GiB, of which "other" holds 2 vCPU/4GiB.
			f := fleetOf(t, map[string]Size{"n1": sz(8, 16)},
				VM{Name: "other", Node: "n1", Reserved: sz(2, 4)},
				VM{Name: "a", Node: "n1", Reserved: c.reserved, Unit: c.unit})
			before := f.nodes["n1"].reserved

			got := growOne(t, f, "a", c.want)
			c.grant.VM = "a"
			require.Equal(t, c.grant, got)
			require.Equal(t, got.Granted, f.vms["a"].Reserved, "what is granted is reserved")
			require.Equal(t, before.add(got.Granted.sub(c.reserved)), f.nodes["n1"].reserved)

			again := growOne(t, f, "a", c.want)
			require.Equal(t, got.Granted, again.Granted, "asking again grants the same size")
			require.Equal(t, got.Partial, again.Partial)
			require.Equal(t, before.add(got.Granted.sub(c.reserved)), f.nodes["n1"].reserved, "and reserves nothing more")
		})
	}
}

func TestGrowUnknownVMDoesNotFailTheBatch(t *testing.T) {
	f := fleetOf(t, map[string]Size{"n1": sz(8, 16)}, VM{Name: "a", Node: "n1", Reserved: sz(1, 1)})
	grants, err := f.Grow([]Ask{{VM: "ghost", Want: sz(2, 2)}, {VM: "a", Want: sz(2, 2)}, {VM: "ghost", Want: Size{}}})
	require.NoError(t, err)
	require.Equal(t, []Grant{
		{VM: "ghost", Partial: true, Reason: "unknown vm ghost: place it before growing it"},
		{VM: "a", Granted: sz(2, 2), Reason: "granted in full on node n1"},
		{VM: "ghost", Reason: "unknown vm ghost: place it before growing it"},
	}, grants)
	requireInvariants(t, f)
}

func TestGrowProcessesAsksInOrder(t *testing.T) {
	f := fleetOf(t, map[string]Size{"n1": sz(8, 16)}, VM{Name: "a", Node: "n1", Reserved: sz(2, 2)}, VM{Name: "b", Node: "n1", Reserved: sz(2, 2)})
	grants, err := f.Grow([]Ask{{VM: "b", Want: sz(5, 4)}, {VM: "a", Want: sz(5, 4)}})
	require.NoError(t, err)
	require.Equal(t, sz(5, 4), grants[0].Granted, "b asked first and gets all it wants")
	require.Equal(t, sz(3, 4), grants[1].Granted, "a gets the rest")
	require.True(t, grants[1].Partial)
	require.Equal(t, sz(8, 8), f.nodes["n1"].reserved)
}

func TestGrowRefusesMalformedAsksBeforeGrantingAny(t *testing.T) {
	cases := map[string]struct {
		ask  Ask
		want string
	}{
		"no vm":         {Ask{Want: sz(2, 2)}, "asks[1].vm: must not be empty"},
		"negative vCPU": {Ask{VM: "a", Want: Size{VCPUMilli: -1}}, "asks[1].want.vcpu_milli: must be >= 0"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			f := fleetOf(t, map[string]Size{"n1": sz(8, 16)}, VM{Name: "a", Node: "n1", Reserved: sz(1, 1)})
			grants, err := f.Grow([]Ask{{VM: "a", Want: sz(4, 4)}, c.ask})
			requireInvalid(t, err, c.want)
			require.Nil(t, grants)
			require.Equal(t, sz(1, 1), f.vms["a"].Reserved, "the valid ask before it was not granted")
		})
	}
}
