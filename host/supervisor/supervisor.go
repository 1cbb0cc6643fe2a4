// Package supervisor keeps one plugin process alive: it launches it with
// go-plugin (AutoMTLS, gRPC only, optional sha256 pin), checks its identity
// and API version, configures it, checks its health, and restarts it with
// exponential backoff when it crashes or hangs. After a restart the config
// is re-sent and the registered hooks (placement replay) run before callers
// see the new client, so no caller ever talks to a half-restored plugin.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// ErrUnavailable is returned by Client while the plugin is being restarted.
var ErrUnavailable = errors.New("plugin unavailable: restarting")

// Spec says which plugin to run and how to configure it.
type Spec struct {
	Name   string
	Kind   pb.Kind
	Path   string
	Args   []string
	SHA256 string
	// Dir is the plugin's working directory (the config file's).
	Dir string
	// Config turns the schema the plugin sends into the configuration it
	// is sent (the host decodes the plugin's HCL block against it). It is
	// called once, at the first start; restarts re-send the same bytes.
	Config func(*pb.ConfigSchema) ([]byte, error)
}

// Options tune supervision; zero values take the defaults.
type Options struct {
	HealthInterval time.Duration // default 2s
	CallTimeout    time.Duration // default 2s: a health check slower than this is a hang
	BackoffMin     time.Duration // default 200ms
	BackoffMax     time.Duration // default 30s
	Logger         hclog.Logger
	// OnRestart is told of every restart attempt's outcome (for metrics).
	OnRestart func(plugin string, err error)
}

func (o *Options) defaults() {
	if o.HealthInterval <= 0 {
		o.HealthInterval = 2 * time.Second
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 2 * time.Second
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = 200 * time.Millisecond
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
}

// Hook runs against a freshly (re)started and configured plugin before it
// is handed to callers. An error fails that start attempt.
type Hook func(ctx context.Context, c *sdk.Client) error

// Plugin is one supervised plugin.
type Plugin struct {
	spec       Spec
	opts       Options
	log        hclog.Logger
	configJSON []byte // set once by the first start

	mu       sync.RWMutex
	cur      *sdk.Launched // nil while restarting
	info     *pb.PluginInfoResponse
	caps     map[string]bool
	restarts int
	hooks    []Hook
	// lastCheck is the outcome of the latest health check (nil: healthy).
	lastCheck error

	kick chan struct{}
	done chan struct{}
	stop context.CancelFunc
}

// Start launches and configures the plugin. It returns an error, and leaves
// nothing running, if the plugin does not start, is not who the config says,
// speaks no common API version, or its config does not decode or is
// rejected. One process serves schema, config and calls: the host does not
// start a plugin twice to learn its schema. Supervision begins with Run.
func Start(ctx context.Context, spec Spec, opts Options) (*Plugin, error) {
	opts.defaults()
	p := &Plugin{
		spec: spec,
		opts: opts,
		log:  opts.Logger.Named(spec.Name),
		kick: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	l, info, caps, err := p.launch(ctx)
	if err != nil {
		return nil, err
	}
	p.cur, p.info, p.caps = l, info, caps
	return p, nil
}

// launch starts a process and brings it to a configured state.
func (p *Plugin) launch(ctx context.Context) (*sdk.Launched, *pb.PluginInfoResponse, map[string]bool, error) {
	l, err := sdk.Launch(sdk.LaunchOptions{Path: p.spec.Path, Args: p.spec.Args, SHA256: p.spec.SHA256, Dir: p.spec.Dir, Logger: p.log})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("plugin %s: %w", p.spec.Name, err)
	}
	info, caps, err := p.prepare(ctx, l.Client)
	if err != nil {
		l.Kill()
		return nil, nil, nil, fmt.Errorf("plugin %s (%s): %w", p.spec.Name, p.spec.Path, err)
	}
	return l, info, caps, nil
}

func (p *Plugin) prepare(ctx context.Context, c *sdk.Client) (*pb.PluginInfoResponse, map[string]bool, error) {
	cctx, cancel := context.WithTimeout(ctx, p.opts.CallTimeout)
	defer cancel()
	info, api, err := c.Identify(cctx, p.spec.Name, p.spec.Kind)
	if err != nil {
		return nil, nil, err
	}
	if p.configJSON == nil {
		resp, err := c.Base.ConfigSchema(cctx, &pb.ConfigSchemaRequest{})
		if err != nil {
			return nil, nil, fmt.Errorf("config schema: %w", err)
		}
		if p.configJSON, err = p.spec.Config(resp.GetSchema()); err != nil {
			return nil, nil, err
		}
	}
	if err := c.Configure(cctx, p.configJSON, api); err != nil {
		return nil, nil, err
	}
	caps, err := c.Capabilities(cctx)
	if err != nil {
		return nil, nil, fmt.Errorf("capabilities: %w", err)
	}
	p.mu.RLock()
	hooks := append([]Hook(nil), p.hooks...)
	p.mu.RUnlock()
	for _, h := range hooks {
		if err := h(ctx, c); err != nil {
			return nil, nil, fmt.Errorf("restoring state: %w", err)
		}
	}
	return info, caps, nil
}

// OnStart registers a hook run after every restart (and never for the
// start that already happened: the caller restores that one itself).
func (p *Plugin) OnStart(h Hook) {
	p.mu.Lock()
	p.hooks = append(p.hooks, h)
	p.mu.Unlock()
}

// Client returns the current client, or ErrUnavailable while restarting.
func (p *Plugin) Client() (*sdk.Client, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.cur == nil {
		return nil, fmt.Errorf("plugin %s: %w", p.spec.Name, ErrUnavailable)
	}
	return p.cur.Client, nil
}

// Name is the plugin's configured name.
func (p *Plugin) Name() string { return p.spec.Name }

// Info is what the plugin reported about itself at its last start.
func (p *Plugin) Info() *pb.PluginInfoResponse {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.info
}

// HasCapability reports a capability declared at the last start.
func (p *Plugin) HasCapability(c string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.caps[c]
}

// Healthy reports whether a process serves and passed its latest health
// check: what supervision knows, without a call of its own.
func (p *Plugin) Healthy() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.cur != nil && p.lastCheck == nil
}

// Capabilities are those declared at the last start, sorted.
func (p *Plugin) Capabilities() []string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]string, 0, len(p.caps))
	for c := range p.caps {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// Restarts counts successful restarts.
func (p *Plugin) Restarts() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.restarts
}

// Kick asks for a health check now, e.g. after a call failed with
// Unavailable, so a crash is noticed without waiting for the next tick.
func (p *Plugin) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Run supervises the plugin until ctx ends or Stop is called, then kills it.
func (p *Plugin) Run(ctx context.Context) {
	ctx, stop := context.WithCancel(ctx)
	p.mu.Lock()
	p.stop = stop
	p.mu.Unlock()
	defer close(p.done)
	defer p.kill()
	t := time.NewTicker(p.opts.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.kick:
		}
		err := p.check(ctx)
		p.mu.Lock()
		p.lastCheck = err
		p.mu.Unlock()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.log.Error("plugin failed its health check; restarting", "error", err)
			p.restart(ctx)
		}
	}
}

// Stop ends supervision and kills the plugin; it waits for Run to return.
func (p *Plugin) Stop() {
	p.mu.RLock()
	stop := p.stop
	p.mu.RUnlock()
	if stop == nil {
		p.kill()
		return
	}
	stop()
	<-p.done
}

func (p *Plugin) check(ctx context.Context) error {
	p.mu.RLock()
	cur := p.cur
	p.mu.RUnlock()
	if cur == nil {
		return ErrUnavailable
	}
	if cur.Exited() {
		return errors.New("process exited")
	}
	cctx, cancel := context.WithTimeout(ctx, p.opts.CallTimeout)
	defer cancel()
	return cur.Healthy(cctx)
}

// restart replaces the process, retrying with exponential backoff until it
// succeeds or ctx ends.
func (p *Plugin) restart(ctx context.Context) {
	p.mu.Lock()
	old := p.cur
	p.cur = nil
	p.mu.Unlock()
	// Kill synchronously: a hung plugin must not keep serving stale state
	// alongside its replacement.
	old.Kill()

	backoff := p.opts.BackoffMin
	for attempt := 1; ; attempt++ {
		l, info, caps, err := p.launch(ctx)
		if err == nil {
			p.mu.Lock()
			p.cur, p.info, p.caps = l, info, caps
			p.restarts++
			p.mu.Unlock()
		}
		// Told after the state changed, so an observer sees the restart.
		if p.opts.OnRestart != nil {
			p.opts.OnRestart(p.spec.Name, err)
		}
		if err == nil {
			p.log.Info("plugin restarted", "attempt", attempt)
			return
		}
		p.log.Error("plugin restart failed", "attempt", attempt, "retry_in", backoff, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, p.opts.BackoffMax)
	}
}

func (p *Plugin) kill() {
	p.mu.Lock()
	cur := p.cur
	p.cur = nil
	p.mu.Unlock()
	if cur != nil {
		cur.Kill()
	}
}

// Pid is the plugin process's pid, or 0 while restarting (for tests and
// operators who want to see which process serves).
func (p *Plugin) Pid() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.cur == nil {
		return 0
	}
	if rc := p.cur.Process.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

// Restart kills the current process; supervision notices at once and
// starts a new one (config re-sent, hooks run), as after a crash.
func (p *Plugin) Restart() {
	p.mu.RLock()
	cur := p.cur
	p.mu.RUnlock()
	if cur != nil {
		cur.Kill()
	}
	p.Kick()
}
