package conformance

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
	"github.com/vertigo-autoscaler/vertigo/sdk/schema"
	"github.com/vertigo-autoscaler/vertigo/sdk/sdktest"
)

// connect is sdktest.Connect, closing the connection before sdktest's own
// cleanup runs. That cleanup closes the client, whose Shutdown RPC stops the
// server from a handler, while it also stops the server itself: a data race
// inside go-plugin that -race reports. With the connection already closed
// the Shutdown RPC never reaches the server.
func connect(t *testing.T, impl sdk.Base) *sdk.Client {
	t.Helper()
	c := sdktest.Connect(t, impl)
	t.Cleanup(func() { _ = c.Conn.Close() })
	return c
}

// report is Run's output, parsed.
type report struct {
	verdicts map[string]string // spec name -> PASS, FAIL or SKIP
	reasons  map[string]string
	summary  string
}

// with returns the names of the specs with verdict, sorted.
func (r report) with(verdict string) []string {
	var names []string
	for name, v := range r.verdicts {
		if v == verdict {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// run runs kind's suite against impl, served in-process, with zero Options.
func run(t *testing.T, kind pb.Kind, impl sdk.Base) (Result, report, *sdk.Client) {
	t.Helper()
	c := connect(t, impl)
	res, r := runWith(t, t.Context(), kind, c, Options{})
	return res, r, c
}

// runWith runs kind's suite against c and checks that the output has one
// well-formed line per spec and the summary last.
func runWith(t *testing.T, ctx context.Context, kind pb.Kind, c *sdk.Client, o Options) (Result, report) {
	t.Helper()
	var out bytes.Buffer
	res, err := RunWith(ctx, kind, c, &out, o)
	require.NoError(t, err)

	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	require.Len(t, lines, len(specNames(kind))+1, out.String())
	r := report{verdicts: map[string]string{}, reasons: map[string]string{}, summary: lines[len(lines)-1]}
	for _, line := range lines[:len(lines)-1] {
		verdict, rest, _ := strings.Cut(line, " ")
		require.Contains(t, []string{"PASS", "FAIL", "SKIP"}, verdict, line)
		name, reason, _ := strings.Cut(rest, ": ")
		require.NotContains(t, r.verdicts, name, "spec reported twice")
		r.verdicts[name], r.reasons[name] = verdict, reason
	}
	require.Equal(t, fmt.Sprintf("%d passed, %d failed, %d skipped", res.Passed, res.Failed, res.Skipped), r.summary)
	require.Equal(t, Result{Passed: len(r.with("PASS")), Failed: len(r.with("FAIL")), Skipped: len(r.with("SKIP"))}, res)
	return res, r
}

// specNames are the names of kind's specs, sorted.
func specNames(kind pb.Kind) []string {
	var names []string
	for _, g := range suites[kind] {
		for _, sp := range g.specs {
			names = append(names, g.name+"/"+sp.name)
		}
	}
	slices.Sort(names)
	return names
}

// requireEmptyFleet checks that the placement suite cleaned up after itself.
func requireEmptyFleet(t *testing.T, c *sdk.Client) {
	t.Helper()
	snap, err := c.Placement.Snapshot(t.Context(), &pb.SnapshotRequest{})
	require.NoError(t, err)
	require.Empty(t, snap.GetNodes())
	require.Empty(t, snap.GetVms())
}

func TestReferencePluginsPassTheirSuites(t *testing.T) {
	for _, tc := range []struct {
		kind pb.Kind
		impl sdk.Base
	}{
		{pb.Kind_KIND_SCALER, newRefScaler()},
		{pb.Kind_KIND_PLACEMENT, newRefPlacement()},
	} {
		t.Run(sdk.KindName(tc.kind), func(t *testing.T) {
			res, r, c := run(t, tc.kind, tc.impl)
			require.Empty(t, r.with("FAIL"), r.reasons)
			require.Equal(t, Result{Passed: len(specNames(tc.kind))}, res)
			require.Equal(t, specNames(tc.kind), r.with("PASS"))
			if tc.kind == pb.Kind_KIND_PLACEMENT {
				requireEmptyFleet(t, c)
			}
		})
	}
}

func TestTestRunsTheSuitesAsSubtests(t *testing.T) {
	Test(t, pb.Kind_KIND_SCALER, connect(t, newRefScaler()))
	Test(t, pb.Kind_KIND_PLACEMENT, connect(t, newRefPlacement()))
}

func TestBrokenPluginsFailTheRightSpecs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		kind   pb.Kind
		impl   sdk.Base
		failed map[string]string // spec -> part of its reason
	}{
		{
			name: "goals out of bounds",
			kind: pb.Kind_KIND_SCALER,
			impl: overshootScaler{newRefScaler()},
			failed: map[string]string{
				"scaler/goals_within_bounds": "(vm-busy): goal.vcpu_milli: 16250 outside bounds [1000, 16000]",
				"scaler/fixed_size":          "want min == max == 2000m vCPU/8GiB",
			},
		},
		{
			name:   "never scales down",
			kind:   pb.Kind_KIND_SCALER,
			impl:   stickyScaler{newRefScaler()},
			failed: map[string]string{"scaler/idle_scales_down": "the goal never dropped below 8000m vCPU/32GiB"},
		},
		{
			name:   "reads the wall clock",
			kind:   pb.Kind_KIND_SCALER,
			impl:   wallClockScaler{newRefScaler()},
			failed: map[string]string{"scaler/deterministic": "tick 0: the same request got two answers"},
		},
		{
			name:   "ignores unknown settings",
			kind:   pb.Kind_KIND_SCALER,
			impl:   lenientScaler{newRefScaler()},
			failed: map[string]string{"base/set_config_unknown_field": `accepted unknown field "vertigo_conformance_unknown_field"`},
		},
		{
			name: "overcommits on grow",
			kind: pb.Kind_KIND_PLACEMENT,
			impl: overcommitPlacement{newRefPlacement()},
			failed: map[string]string{
				"placement/grow_within_capacity": "node node-a reserves 11000m vCPU/44GiB, above its capacity 8000m vCPU/32GiB",
				"placement/partial_grants":       "node node-a reserves 12000m vCPU/48GiB, above its capacity",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, r, c := run(t, tc.kind, tc.impl)
			want := slices.Sorted(maps.Keys(tc.failed))
			require.Equal(t, want, r.with("FAIL"), r.reasons)
			require.Equal(t, Result{Passed: len(specNames(tc.kind)) - len(want), Failed: len(want)}, res)
			for name, reason := range tc.failed {
				require.Contains(t, r.reasons[name], reason, name)
			}
			if tc.kind == pb.Kind_KIND_PLACEMENT {
				requireEmptyFleet(t, c)
			}
		})
	}
}

func TestPluginLyingAboutItsKindFails(t *testing.T) {
	_, r, _ := run(t, pb.Kind_KIND_SCALER, kindLiar{refScaler: newRefScaler()})
	require.Equal(t, "FAIL", r.verdicts["base/plugin_info"])
	require.Equal(t, "kind is placement, want scaler", r.reasons["base/plugin_info"])
	for _, name := range specNames(pb.Kind_KIND_SCALER) {
		if strings.HasPrefix(name, "scaler/") {
			require.Equal(t, "FAIL", r.verdicts[name], name)
			require.Contains(t, r.reasons[name], "Unimplemented", name)
		}
	}
}

func TestMalformedConfigSchemaFails(t *testing.T) {
	for _, tc := range []struct {
		name   string
		schema *pb.ConfigSchema
		reason string
	}{
		{"unnamed attribute", schema.Of(schema.Number("", 1, "")), "attributes[0].name: empty"},
		{"duplicate names", schema.Of(schema.Number("x", 1, ""), schema.Bool("x", true, "")), `attributes[1].name: "x" appears twice`},
		{"unknown type", schema.Of(&pb.Attribute{Name: "x", Type: 99}), "unknown attribute type"},
		{"default of another type", schema.Of(&pb.Attribute{Name: "x", Type: pb.AttributeType_ATTRIBUTE_TYPE_DURATION, DefaultJson: `"5s"`}), `default_json "5s": not a ATTRIBUTE_TYPE_DURATION`},
		{"default not allowed", schema.Of(schema.String("mode", "turbo", "", "slow", "fast")), `not one of ["slow" "fast"]`},
		{"one_of on a number", schema.Of(&pb.Attribute{Name: "x", Type: pb.AttributeType_ATTRIBUTE_TYPE_NUMBER, OneOf: []string{"1"}}), "only string attributes"},
		{"required attribute", schema.Of(schema.Required(schema.Number("x", 1, "the x"))), `The argument "x" is required`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, r, _ := run(t, pb.Kind_KIND_SCALER, badSchemaScaler{refScaler: newRefScaler(), schema: tc.schema})
			require.Equal(t, "FAIL", r.verdicts["base/config_schema"])
			require.Contains(t, r.reasons["base/config_schema"], tc.reason)
		})
	}
}

func TestMissingCapabilitiesAreSkippedWithTheReason(t *testing.T) {
	scaler := newRefScaler()
	scaler.caps = nil
	placement := newRefPlacement()
	placement.caps = nil
	for _, tc := range []struct {
		kind    pb.Kind
		impl    sdk.Base
		skipped map[string]string
	}{
		{pb.Kind_KIND_SCALER, scaler, map[string]string{
			"scaler/memory_pressure_event": "needs capability scaler.pressure_events",
			"scaler/cache_working_set":     "needs capability scaler.cache_working_set",
		}},
		{pb.Kind_KIND_PLACEMENT, placement, map[string]string{
			"placement/partial_grants":  "needs capability placement.partial_grants",
			"placement/migration_plans": "needs capability placement.migration_plans",
		}},
	} {
		t.Run(sdk.KindName(tc.kind), func(t *testing.T) {
			res, r, _ := run(t, tc.kind, tc.impl)
			require.Equal(t, Result{Passed: len(specNames(tc.kind)) - len(tc.skipped), Skipped: len(tc.skipped)}, res)
			for name, reason := range tc.skipped {
				require.Equal(t, "SKIP", r.verdicts[name], name)
				require.Equal(t, reason, r.reasons[name], name)
			}
		})
	}
}

func TestKindsWithoutASuiteAreAnError(t *testing.T) {
	for _, kind := range []pb.Kind{pb.Kind_KIND_UNSPECIFIED} {
		var out bytes.Buffer
		res, err := Run(t.Context(), kind, connect(t, newRefScaler()), &out)
		require.EqualError(t, err, "no conformance suite for kind "+sdk.KindName(kind)+" yet")
		require.Equal(t, Result{}, res)
		require.Empty(t, out.String())
	}
}

func TestUnreachablePluginIsAnError(t *testing.T) {
	c := connect(t, newRefScaler())
	require.NoError(t, c.Conn.Close())
	var out bytes.Buffer
	res, err := Run(t.Context(), pb.Kind_KIND_SCALER, c, &out)
	require.ErrorContains(t, err, "reaching plugin")
	require.Equal(t, Result{}, res)
	require.Empty(t, out.String())
}
