// Package conformance checks that a plugin honours the Vertigo protocol of
// its kind, the way csi-sanity checks a CSI driver: specs are grouped per
// service, a spec that needs an optional capability is skipped (with the
// reason) when the plugin does not declare it, calls are repeated to prove
// idempotency, and whatever a spec creates is cleaned up even when it fails.
//
// The same specs run from the CLI (Run) and from a plugin author's go test
// (Test).
package conformance

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// stepTimeout bounds each spec and each of its setup and cleanup steps, so a
// plugin that hangs fails one spec instead of stalling the run.
const stepTimeout = 30 * time.Second

// Result counts the specs of one run.
type Result struct{ Passed, Failed, Skipped int }

// spec is one claim about a plugin.
type spec struct {
	name string
	// needs is the capability the claim depends on; empty when every plugin
	// of the kind must satisfy it.
	needs string
	check func(ctx context.Context, s *session) error
}

// group is the specs of one service. before gives every spec a clean slate
// and after undoes what the spec created, whether it passed or not.
type group struct {
	name          string
	before, after func(ctx context.Context, s *session) error
	specs         []spec
}

// suites are the groups run for each kind, in order.
var suites = map[pb.Kind][]group{
	pb.Kind_KIND_SCALER:    {baseGroup, scalerGroup},
	pb.Kind_KIND_PLACEMENT: {baseGroup, placementGroup},
}

func suiteFor(kind pb.Kind) ([]group, error) {
	groups, ok := suites[kind]
	if !ok {
		return nil, fmt.Errorf("no conformance suite for kind %s yet", sdk.KindName(kind))
	}
	return groups, nil
}

// Run runs the suite for kind against c, printing one line per spec
// ("PASS name", "FAIL name: why", "SKIP name: needs capability X") and, last, the plain
// summary line "N passed, N failed, N skipped". err is only for an unknown kind or a
// plugin that cannot be reached at all.
func Run(ctx context.Context, kind pb.Kind, c *sdk.Client, w io.Writer) (Result, error) {
	groups, err := suiteFor(kind)
	if err != nil {
		return Result{}, err
	}
	s, err := newSession(ctx, kind, c)
	if err != nil {
		return Result{}, err
	}
	var res Result
	for _, g := range groups {
		for _, sp := range g.specs {
			name := g.name + "/" + sp.name
			skip, err := s.run(ctx, g, sp)
			switch {
			case skip != "":
				res.Skipped++
				fmt.Fprintf(w, "SKIP %s: %s\n", name, skip)
			case err != nil:
				res.Failed++
				fmt.Fprintf(w, "FAIL %s: %s\n", name, oneLine(err.Error()))
			default:
				res.Passed++
				fmt.Fprintf(w, "PASS %s\n", name)
			}
		}
	}
	fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", res.Passed, res.Failed, res.Skipped)
	return res, nil
}

// Test runs the same specs as subtests of t (t.Skip with the reason for missing capabilities).
func Test(t *testing.T, kind pb.Kind, c *sdk.Client) {
	t.Helper()
	groups, err := suiteFor(kind)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSession(t.Context(), kind, c)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, sp := range g.specs {
				t.Run(sp.name, func(t *testing.T) {
					skip, err := s.run(t.Context(), g, sp)
					if skip != "" {
						t.Skip(skip)
					}
					if err != nil {
						t.Error(err)
					}
				})
			}
		})
	}
}

// session is what a run learns from the plugin once, when it connects.
type session struct {
	c    *sdk.Client
	kind pb.Kind
	info *pb.PluginInfoResponse
	// Capabilities and ConfigSchema failures are reported by their specs;
	// the specs that need them fail with the same reason.
	caps      map[string]bool
	capsErr   error
	schema    *pb.ConfigSchema
	schemaErr error
}

func newSession(ctx context.Context, kind pb.Kind, c *sdk.Client) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	info, err := c.Base.PluginInfo(ctx, &pb.PluginInfoRequest{})
	if err != nil {
		return nil, fmt.Errorf("reaching plugin: %w", err)
	}
	s := &session{c: c, kind: kind, info: info}
	s.caps, s.capsErr = c.Capabilities(ctx)
	if resp, err := c.Base.ConfigSchema(ctx, &pb.ConfigSchemaRequest{}); err != nil {
		s.schemaErr = fmt.Errorf("ConfigSchema: %w", err)
	} else {
		s.schema = resp.GetSchema()
	}
	return s, nil
}

// run runs one spec between its group's before and after. It returns the
// reason when the spec is skipped, else the spec's failure or nil.
func (s *session) run(ctx context.Context, g group, sp spec) (skip string, err error) {
	if sp.needs != "" && !s.caps[sp.needs] {
		return "needs capability " + sp.needs, nil
	}
	if g.before != nil {
		if err := s.step(ctx, g.before); err != nil {
			return "", fmt.Errorf("setup: %w", err)
		}
	}
	err = s.step(ctx, sp.check)
	if g.after != nil {
		if cerr := s.step(ctx, g.after); cerr != nil && err == nil {
			err = fmt.Errorf("cleanup: %w", cerr)
		}
	}
	return "", err
}

func (s *session) step(ctx context.Context, f func(context.Context, *session) error) error {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	return f(ctx, s)
}

// configure sends the plugin its default configuration, as the host does
// for an empty `config {}` block.
func (s *session) configure(ctx context.Context) error {
	defaults, err := s.defaults()
	if err != nil {
		return err
	}
	version, err := sdk.Negotiate(sdk.APIVersions, s.info.GetApiVersions(), s.info.GetName())
	if err != nil {
		return err
	}
	if err := s.c.Configure(ctx, defaults, version); err != nil {
		return fmt.Errorf("configuring with defaults %s: %w", defaults, err)
	}
	return nil
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
