package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/api"
	"github.com/vertigo-autoscaler/vertigo/host/model"
)

const testToken = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// fakeBackend records what the API asked of it.
type fakeBackend struct {
	status    api.Status
	statusErr error
	plugins   []string // the names RestartPlugin knows

	mu        sync.Mutex
	ticks     int
	restarted []string
	loads     []api.LoadRequest
	loadErr   error
}

func (b *fakeBackend) LoadVM(_ context.Context, name string, req api.LoadRequest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if name != "pg-1" {
		return fmt.Errorf("vm %q: %w", name, api.ErrNotFound)
	}
	if b.loadErr != nil {
		return b.loadErr
	}
	b.loads = append(b.loads, req)
	return nil
}

// MigrateVM reports two progress steps; a move to "nowhere" fails after
// the first.
func (b *fakeBackend) MigrateVM(_ context.Context, name, to string, progress func(api.Migration)) error {
	m := api.Migration{VM: name, From: "node-a", To: to, State: "running", TransferredBytes: 10, RemainingBytes: 90}
	progress(m)
	if to == "nowhere" {
		return fmt.Errorf("no node %q", to)
	}
	m.State, m.TransferredBytes, m.RemainingBytes, m.DowntimeNanos = "completed", 100, 0, 30e6
	progress(m)
	return nil
}

func (b *fakeBackend) Status(context.Context) (api.Status, error) { return b.status, b.statusErr }

func (b *fakeBackend) Tick(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ticks++
	return nil
}

func (b *fakeBackend) RestartPlugin(_ context.Context, name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.plugins {
		if p == name {
			b.restarted = append(b.restarted, name)
			return nil
		}
	}
	return fmt.Errorf("plugin %q: %w", name, api.ErrNotFound)
}

func (b *fakeBackend) tickCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ticks
}

func (b *fakeBackend) restarts() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.restarted...)
}

const metricsBody = "vertigo_test_metric 1\n"

var fakeMetrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	_, _ = io.WriteString(w, metricsBody)
})

// startServer serves b on 127.0.0.1 with a free port until the test ends.
func startServer(t *testing.T, b api.Backend) *api.Server {
	t.Helper()
	s, err := api.New("127.0.0.1:0", testToken, b, fakeMetrics, hclog.NewNullLogger())
	require.NoError(t, err)
	require.NoError(t, s.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, s.Shutdown(ctx))
	})
	return s
}

type response struct {
	code   int
	header http.Header
	body   string
}

// errorMessage is the "error" of a JSON error answer.
func (r response) errorMessage(t *testing.T) string {
	t.Helper()
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	var body struct {
		Error string `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &body), r.body)
	require.NotEmpty(t, body.Error)
	return body.Error
}

// send makes a raw request; authorization is the whole header value, or
// none when empty.
func send(t *testing.T, s *api.Server, method, path, authorization string, body io.Reader) response {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+s.Addr()+path, body)
	require.NoError(t, err)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{code: resp.StatusCode, header: resp.Header, body: string(raw)}
}

func TestPostNeedsTheToken(t *testing.T) {
	for _, tc := range []struct {
		name, authorization string
		wantMessage         string
	}{
		{"missing", "", "missing token"},
		{"wrong", "Bearer " + strings.Repeat("f", len(testToken)), "wrong token"},
		{"shorter", "Bearer " + testToken[:10], "wrong token"},
		{"another scheme", "Basic " + testToken, "missing token"},
		{"empty bearer", "Bearer ", "missing token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &fakeBackend{plugins: []string{"scaler"}}
			s := startServer(t, b)
			for _, path := range []string{"/v1/tick", "/v1/plugins/scaler/restart"} {
				r := send(t, s, http.MethodPost, path, tc.authorization, nil)
				require.Equal(t, http.StatusUnauthorized, r.code, path)
				require.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer")
				msg := r.errorMessage(t)
				require.Contains(t, msg, tc.wantMessage)
				require.Contains(t, msg, "api.token_file", "the message says where the token is")
			}
			require.Zero(t, b.tickCount())
			require.Empty(t, b.restarts())
		})
	}

	t.Run("right", func(t *testing.T) {
		b := &fakeBackend{plugins: []string{"scaler"}}
		s := startServer(t, b)
		require.Equal(t, http.StatusNoContent, send(t, s, http.MethodPost, "/v1/tick", "Bearer "+testToken, nil).code)
		require.Equal(t, http.StatusNoContent,
			send(t, s, http.MethodPost, "/v1/plugins/scaler/restart", "bearer "+testToken, nil).code,
			"the scheme is case-insensitive")
		require.Equal(t, 1, b.tickCount())
		require.Equal(t, []string{"scaler"}, b.restarts())
	})
}

func TestReadsNeedNoToken(t *testing.T) {
	want := api.Status{
		Time:  time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
		Nodes: []api.NodeStatus{{Name: "n1", Capacity: model.Size{VCPUMilli: 8000}, Watermark: 0.9, VMs: []string{"pg"}}},
	}
	s := startServer(t, &fakeBackend{status: want})

	r := send(t, s, http.MethodGet, "/v1/status", "", nil)
	require.Equal(t, http.StatusOK, r.code, r.body)
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	var got api.Status
	require.NoError(t, json.Unmarshal([]byte(r.body), &got))
	require.Equal(t, want, got)

	r = send(t, s, http.MethodGet, "/healthz", "", nil)
	require.Equal(t, http.StatusOK, r.code)
	require.JSONEq(t, `{"status":"ok"}`, r.body)
}

func TestMetricsAreServed(t *testing.T) {
	s := startServer(t, &fakeBackend{})
	r := send(t, s, http.MethodGet, "/metrics", "", nil)
	require.Equal(t, http.StatusOK, r.code)
	require.Equal(t, metricsBody, r.body)
}

func TestErrorsAreJSONWithTheRightStatus(t *testing.T) {
	b := &fakeBackend{statusErr: errors.New("store unreadable"), plugins: []string{"scaler"}}
	s := startServer(t, b)
	auth := "Bearer " + testToken

	for _, tc := range []struct {
		name, method, path string
		body               io.Reader
		wantCode           int
		wantMessage        string
		wantAllow          string
	}{
		{"unknown route", http.MethodGet, "/v2/status", nil, http.StatusNotFound, "no route for GET /v2/status", ""},
		{"unknown plugin", http.MethodPost, "/v1/plugins/nope/restart", nil, http.StatusNotFound, `plugin "nope": not found`, ""},
		{"read of a write route", http.MethodGet, "/v1/tick", nil, http.StatusMethodNotAllowed, "use POST", "POST"},
		{"write to a read route", http.MethodDelete, "/v1/status", nil, http.StatusMethodNotAllowed, "use GET", "GET, HEAD"},
		{"backend failure", http.MethodGet, "/v1/status", nil, http.StatusInternalServerError, "store unreadable", ""},
		{"a body where none is taken", http.MethodPost, "/v1/tick", strings.NewReader(`{"vm":"pg"}`),
			http.StatusBadRequest, "POST /v1/tick takes no request body", ""},
		{"a body over 1 MiB", http.MethodPost, "/v1/tick", strings.NewReader(strings.Repeat("x", 1<<20+1)),
			http.StatusRequestEntityTooLarge, "request body over 1048576 bytes", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := send(t, s, tc.method, tc.path, auth, tc.body)
			require.Equal(t, tc.wantCode, r.code, r.body)
			require.Contains(t, r.errorMessage(t), tc.wantMessage)
			require.Equal(t, tc.wantAllow, r.header.Get("Allow"))
		})
	}
	require.Zero(t, b.tickCount(), "a refused request reaches no backend")
}

func TestForeignHostHeaderIsRefused(t *testing.T) {
	s := startServer(t, &fakeBackend{})
	req, err := http.NewRequest(http.MethodGet, "http://"+s.Addr()+"/v1/status", nil)
	require.NoError(t, err)
	req.Host = "attacker.example:80" // what a DNS-rebound page sends
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	_, port, err := net.SplitHostPort(s.Addr())
	require.NoError(t, err)
	for _, host := range []string{"localhost:" + port, "127.0.0.1", "[::1]", "[::1]:" + port} {
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, host)
	}
}

func TestOnlyLoopbackAddressesAreAccepted(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "192.0.2.1:0", ":0", "[::]:0", "example.com:7070", "127.0.0.1"} {
		_, err := api.New(addr, testToken, &fakeBackend{}, fakeMetrics, nil)
		require.Error(t, err, addr)
		require.Contains(t, err.Error(), "api address", addr)
	}
	for _, addr := range []string{"127.0.0.1:0", "127.0.0.2:7070", "[::1]:0", "localhost:0"} {
		_, err := api.New(addr, testToken, &fakeBackend{}, fakeMetrics, nil)
		require.NoError(t, err, addr)
	}
}

func TestNewRefusesAnEmptyToken(t *testing.T) {
	_, err := api.New("127.0.0.1:0", "", &fakeBackend{}, fakeMetrics, nil)
	require.ErrorContains(t, err, "token is empty")
}

func TestStartReportsListenErrors(t *testing.T) {
	first := startServer(t, &fakeBackend{})
	second, err := api.New(first.Addr(), testToken, &fakeBackend{}, fakeMetrics, nil)
	require.NoError(t, err)
	require.ErrorContains(t, second.Start(), "address already in use")

	require.ErrorContains(t, first.Start(), "already started")
}

func TestAddrIsTheBoundAddress(t *testing.T) {
	s, err := api.New("127.0.0.1:0", testToken, &fakeBackend{}, fakeMetrics, nil)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:0", s.Addr())
	require.NoError(t, s.Start())
	defer s.Shutdown(context.Background())
	host, port, err := net.SplitHostPort(s.Addr())
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", host)
	require.NotEqual(t, "0", port)
}

func TestShutdownStopsServing(t *testing.T) {
	s, err := api.New("127.0.0.1:0", testToken, &fakeBackend{}, fakeMetrics, nil)
	require.NoError(t, err)
	require.NoError(t, s.Start())
	addr := s.Addr()
	require.NoError(t, s.Shutdown(context.Background()))

	_, err = net.Dial("tcp", addr)
	require.Error(t, err, "nothing listens after Shutdown")
}
