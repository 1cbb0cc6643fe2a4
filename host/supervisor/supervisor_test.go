package supervisor

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

var testPlugin string

// TestMain builds the misbehaving test plugin once: these are black-box
// tests of real processes, as the host runs them.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vertigo-supervisor-test")
	if err != nil {
		panic(err)
	}
	testPlugin = filepath.Join(dir, "vertigo-testplugin")
	out, err := exec.Command("go", "build", "-o", testPlugin, "../internal/testplugin").CombinedOutput()
	if err != nil {
		panic("building test plugin: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func spec(mode string) Spec {
	return Spec{
		Name:   "vertigo-testplugin",
		Kind:   pb.Kind_KIND_SCALER,
		Path:   testPlugin,
		Args:   []string{"-mode", mode},
		Config: func(*pb.ConfigSchema) ([]byte, error) { return []byte(`{"step":1}`), nil },
	}
}

func fastOpts(t *testing.T, restarts chan<- error) Options {
	return Options{
		HealthInterval: 50 * time.Millisecond,
		CallTimeout:    500 * time.Millisecond,
		BackoffMin:     10 * time.Millisecond,
		BackoffMax:     100 * time.Millisecond,
		Logger:         hclog.New(&hclog.LoggerOptions{Output: testWriter{t}, Level: hclog.Debug}),
		OnRestart: func(_ string, err error) {
			if restarts != nil {
				restarts <- err
			}
		},
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

func decide(t *testing.T, p *Plugin) error {
	c, err := p.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = c.Scaler.Decide(ctx, &pb.DecideRequest{Vms: []*pb.ScalerInput{{Vm: "a", Current: &pb.Size{VcpuMilli: 1000}}}})
	return err
}

func TestStartRefusesWrongIdentity(t *testing.T) {
	for mode, want := range map[string]string{
		"liar":       `expected name="vertigo-testplugin" kind=scaler, got name="impostor" kind=scaler`,
		"old-api":    "upgrade the plugin",
		"new-api":    "upgrade the host",
		"stdout":     "vertigo-testplugin",
		"wrong-kind": "",
	} {
		t.Run(mode, func(t *testing.T) {
			s := spec(mode)
			if mode == "wrong-kind" {
				s.Kind = pb.Kind_KIND_PLACEMENT
				want = `expected name="vertigo-testplugin" kind=placement, got name="vertigo-testplugin" kind=scaler`
			}
			_, err := Start(context.Background(), s, fastOpts(t, nil))
			require.Error(t, err)
			require.Contains(t, err.Error(), want)
		})
	}
}

func TestStartRefusesBadConfig(t *testing.T) {
	s := spec("ok")
	s.Config = func(*pb.ConfigSchema) ([]byte, error) { return []byte(`{"step":-1}`), nil }
	_, err := Start(context.Background(), s, fastOpts(t, nil))
	var fe sdk.FieldErrors
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "step", fe[0].Field)
}

func TestSHA256Pin(t *testing.T) {
	sum, err := sdk.FileSHA256(testPlugin)
	require.NoError(t, err)

	s := spec("ok")
	s.SHA256 = sum
	p, err := Start(context.Background(), s, fastOpts(t, nil))
	require.NoError(t, err)
	p.Stop()

	s.SHA256 = "00" + sum[2:]
	_, err = Start(context.Background(), s, fastOpts(t, nil))
	require.ErrorContains(t, err, "checksum")
}

// A crash is noticed through Kick (the caller saw a failed call) and the
// plugin comes back configured, with the restore hook run before any caller
// gets the new client.
func TestRestartAfterCrashRunsHooks(t *testing.T) {
	restarts := make(chan error, 10)
	p, err := Start(context.Background(), spec("crash-after=1"), fastOpts(t, restarts))
	require.NoError(t, err)
	hooked := make(chan struct{}, 10)
	p.OnStart(func(ctx context.Context, c *sdk.Client) error {
		hooked <- struct{}{}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	go p.Run(ctx)
	t.Cleanup(func() { cancel(); p.Stop() })

	firstPid := p.Pid()
	require.NoError(t, decide(t, p))
	require.Error(t, decide(t, p), "the second call crashes the plugin")
	p.Kick()

	waitRestart(t, restarts)
	waitOn(t, hooked, "restore hook")
	require.Equal(t, 1, p.Restarts())
	require.NotEqual(t, firstPid, p.Pid())
	require.NoError(t, decide(t, p), "the restarted plugin serves again")
}

func TestRestartAfterSIGKILL(t *testing.T) {
	restarts := make(chan error, 10)
	p, err := Start(context.Background(), spec("ok"), fastOpts(t, restarts))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	go p.Run(ctx)
	t.Cleanup(func() { cancel(); p.Stop() })

	pid := p.Pid()
	require.NotZero(t, pid)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	waitRestart(t, restarts)
	require.NotEqual(t, pid, p.Pid())
	require.NoError(t, decide(t, p))
	require.Eventually(t, p.Healthy, 10*time.Second, 10*time.Millisecond, "the replacement passes its health checks")
}

// A plugin that stops answering is killed and replaced, again and again
// with backoff, since each replacement hangs too.
func TestRestartHungPlugin(t *testing.T) {
	restarts := make(chan error, 100)
	opts := fastOpts(t, restarts)
	opts.CallTimeout = 100 * time.Millisecond
	p, err := Start(context.Background(), spec("hang"), opts)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	go p.Run(ctx)
	t.Cleanup(func() { cancel(); p.Stop() })

	pid := p.Pid()
	waitRestart(t, restarts)
	waitRestart(t, restarts)
	require.GreaterOrEqual(t, p.Restarts(), 2)
	require.False(t, p.Healthy(), "every replacement hangs too")
	require.Error(t, syscall.Kill(pid, 0), "the hung process was killed")
}

func waitRestart(t *testing.T, ch <-chan error) {
	t.Helper()
	select {
	case err := <-ch:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("no restart within 20s")
	}
}

func waitOn(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		t.Fatalf("no %s within 20s", what)
	}
}

// lineWatcher is a log sink that signals when a line containing want
// arrives.
type lineWatcher struct {
	want string
	seen chan string
}

func (w lineWatcher) Write(b []byte) (int, error) {
	if line := string(b); strings.Contains(line, w.want) {
		select {
		case w.seen <- line:
		default:
		}
	}
	return len(b), nil
}

// The plugin's own logs come out under the host's logger, named after it.
func TestPluginLogsAreReemitted(t *testing.T) {
	w := lineWatcher{want: "configured", seen: make(chan string, 1)}
	opts := fastOpts(t, nil)
	opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "host", Output: w, Level: hclog.Debug})
	p, err := Start(context.Background(), spec("ok"), opts)
	require.NoError(t, err)
	defer p.Stop()
	select {
	case line := <-w.seen:
		require.Contains(t, line, "host.vertigo-testplugin")
		require.Contains(t, line, "step=1")
	case <-time.After(10 * time.Second):
		t.Fatal("the plugin's log line never reached the host's logger")
	}
}
