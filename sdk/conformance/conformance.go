// Package conformance checks that a plugin honours the Vertigo protocol of
// its kind, the way csi-sanity checks a CSI driver: specs are grouped per
// service, a spec that needs an optional capability is skipped (with the
// reason) when the plugin does not declare it, calls are repeated to prove
// idempotency, and whatever a spec creates is cleaned up even when it fails.
//
// The same specs run from the CLI (Run, RunWith) and from a plugin author's
// go test (Test, TestWith).
package conformance

import (
	"cmp"
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
// plugin that hangs fails one spec instead of stalling the run. A group
// whose specs boot VMs sets a longer one.
const stepTimeout = 30 * time.Second

// defaultNodes are the nodes VMs are started on and migrated between when
// Options names none.
var defaultNodes = []string{"node-a", "node-b"}

// Options adapts a run to a plugin that needs more than its schema's
// defaults and a single process.
type Options struct {
	// ConfigJSON, when set, is sent with SetConfig instead of the schema's defaults.
	ConfigJSON []byte
	// Relaunch starts a NEW process of the same plugin binary and returns a client to it; the
	// suite uses it for the recovery specs (skipped with a reason when nil).
	Relaunch func(ctx context.Context) (*sdk.Client, error)
	// Kill SIGKILLs the current plugin process (the one behind the client in use).
	Kill func() error
	// Nodes are the node names VMs may be started on and migrated between (default ["node-a","node-b"]).
	Nodes []string
}

// Result counts the specs of one run.
type Result struct{ Passed, Failed, Skipped int }

// spec is one claim about a plugin.
type spec struct {
	name string
	// requires says why the claim cannot be checked against this plugin;
	// nil when every plugin of the kind must satisfy it.
	requires requirement
	check    func(ctx context.Context, s *session) error
}

// A requirement returns why a spec cannot run against the plugin, or "".
type requirement func(s *session) string

// needs requires every one of caps.
func needs(caps ...string) requirement {
	return func(s *session) string {
		for _, c := range caps {
			if !s.caps[c] {
				return "needs capability " + c
			}
		}
		return ""
	}
}

// needsOneOf requires at least one of caps.
func needsOneOf(caps ...string) requirement {
	return func(s *session) string {
		for _, c := range caps {
			if s.caps[c] {
				return ""
			}
		}
		return "needs capability " + strings.Join(caps, " or ")
	}
}

// all requires every one of reqs, reporting the first that fails.
func all(reqs ...requirement) requirement {
	return func(s *session) string {
		for _, r := range reqs {
			if why := r(s); why != "" {
				return why
			}
		}
		return ""
	}
}

// group is the specs of one service. before gives every spec a clean slate
// and after undoes what the spec created, whether it passed or not.
type group struct {
	name          string
	before, after func(ctx context.Context, s *session) error
	// timeout replaces stepTimeout for the group's steps when set.
	timeout time.Duration
	specs   []spec
}

// suites are the groups run for each kind, in order.
var suites = map[pb.Kind][]group{
	pb.Kind_KIND_SCALER:     {baseGroup, scalerGroup},
	pb.Kind_KIND_PLACEMENT:  {baseGroup, placementGroup},
	pb.Kind_KIND_HYPERVISOR: {baseGroup, hypervisorGroup},
	pb.Kind_KIND_NETWORK:    {baseGroup, networkGroup},
}

func suiteFor(kind pb.Kind) ([]group, error) {
	groups, ok := suites[kind]
	if !ok {
		return nil, fmt.Errorf("no conformance suite for kind %s yet", sdk.KindName(kind))
	}
	return groups, nil
}

// Run is RunWith with zero Options: the plugin is configured with its
// schema's defaults, and specs that need a relaunch are skipped.
func Run(ctx context.Context, kind pb.Kind, c *sdk.Client, w io.Writer) (Result, error) {
	return RunWith(ctx, kind, c, w, Options{})
}

// RunWith runs the suite for kind against c, printing one line per spec
// ("PASS name", "FAIL name: why", "SKIP name: needs capability X") and, last, the plain
// summary line "N passed, N failed, N skipped". err is only for an unknown kind or a
// plugin that cannot be reached at all.
func RunWith(ctx context.Context, kind pb.Kind, c *sdk.Client, w io.Writer, o Options) (Result, error) {
	groups, err := suiteFor(kind)
	if err != nil {
		return Result{}, err
	}
	s, err := newSession(ctx, kind, c, o)
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

// Test is TestWith with zero Options.
func Test(t *testing.T, kind pb.Kind, c *sdk.Client) {
	t.Helper()
	TestWith(t, kind, c, Options{})
}

// TestWith runs the same specs as RunWith as subtests of t (t.Skip with the
// reason for missing capabilities).
func TestWith(t *testing.T, kind pb.Kind, c *sdk.Client, o Options) {
	t.Helper()
	groups, err := suiteFor(kind)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSession(t.Context(), kind, c, o)
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

// session is what a run learns from the plugin once, when it connects, and
// what its specs leave behind.
type session struct {
	// c is the client in use: a relaunch replaces it.
	c    *sdk.Client
	kind pb.Kind
	opts Options
	info *pb.PluginInfoResponse
	// Capabilities and ConfigSchema failures are reported by their specs;
	// the specs that need them fail with the same reason.
	caps      map[string]bool
	capsErr   error
	schema    *pb.ConfigSchema
	schemaErr error
	// vms are the VMs started and not yet known to be stopped.
	vms vmRecord
	// net is what the network specs set up and attached.
	net netRecord
}

func newSession(ctx context.Context, kind pb.Kind, c *sdk.Client, o Options) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	info, err := c.Base.PluginInfo(ctx, &pb.PluginInfoRequest{})
	if err != nil {
		return nil, fmt.Errorf("reaching plugin: %w", err)
	}
	if len(o.Nodes) == 0 {
		o.Nodes = defaultNodes
	}
	s := &session{c: c, kind: kind, opts: o, info: info, vms: newVMRecord()}
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
	// After an interrupt, the specs left would only fail for it.
	if ctx.Err() != nil {
		return fmt.Sprintf("not run: %v", context.Cause(ctx)), nil
	}
	if sp.requires != nil {
		if why := sp.requires(s); why != "" {
			return why, nil
		}
	}
	if g.before != nil {
		if err := s.step(ctx, g, g.before); err != nil {
			return "", fmt.Errorf("setup: %w", err)
		}
	}
	err = s.step(ctx, g, sp.check)
	if cerr := s.cleanup(ctx, g); cerr != nil && err == nil {
		err = cerr
	}
	return "", err
}

// cleanup runs g's after step even when ctx is cancelled (an interrupted
// run still stops the VMs it started), within the step's own deadline.
func (s *session) cleanup(ctx context.Context, g group) error {
	if g.after == nil {
		return nil
	}
	if err := s.step(context.WithoutCancel(ctx), g, g.after); err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	return nil
}

func (s *session) step(ctx context.Context, g group, f func(context.Context, *session) error) error {
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(g.timeout, stepTimeout))
	defer cancel()
	return f(ctx, s)
}

// config is the configuration every SetConfig of the run sends: the one
// Options gives, else the schema's defaults, as the host sends for an
// empty `config {}` block.
func (s *session) config() ([]byte, error) {
	if s.opts.ConfigJSON != nil {
		return s.opts.ConfigJSON, nil
	}
	return s.defaults()
}

// configure sends the plugin the run's configuration.
func (s *session) configure(ctx context.Context) error {
	cfg, err := s.config()
	if err != nil {
		return err
	}
	version, err := sdk.Negotiate(sdk.APIVersions, s.info.GetApiVersions(), s.info.GetName())
	if err != nil {
		return err
	}
	if err := s.c.Configure(ctx, cfg, version); err != nil {
		return fmt.Errorf("configuring with %s: %w", cfg, err)
	}
	return nil
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
