package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPageIsServedReadOnly(t *testing.T) {
	s := startServer(t, newHistoryBackend())

	r := send(t, s, http.MethodGet, "/", "", nil)
	require.Equal(t, http.StatusOK, r.code)
	require.Equal(t, "text/html; charset=utf-8", r.header.Get("Content-Type"))
	require.Contains(t, r.body, `<script src="/web/app.js" defer></script>`)
	csp := r.header.Get("Content-Security-Policy")
	require.Contains(t, csp, "default-src 'none'")
	require.Contains(t, csp, "connect-src 'self'", "the page talks to this server only")
	require.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"))

	for path, contentType := range map[string]string{"/web/app.js": "text/javascript; charset=utf-8", "/web/style.css": "text/css; charset=utf-8"} {
		r := send(t, s, http.MethodGet, path, "", nil)
		require.Equal(t, http.StatusOK, r.code, path)
		require.Equal(t, contentType, r.header.Get("Content-Type"), path)
		require.NotEmpty(t, r.header.Get("Content-Security-Policy"), path)
	}
	require.Equal(t, http.StatusNotFound, send(t, s, http.MethodGet, "/web/missing.js", "", nil).code)
	require.Equal(t, http.StatusNotFound, send(t, s, http.MethodGet, "/elsewhere", "", nil).code)

	// The page itself can change nothing: it only reads.
	js := send(t, s, http.MethodGet, "/web/app.js", "", nil).body
	require.Contains(t, js, "fetch(")
	require.NotContains(t, js, "method:")
	require.Equal(t, http.StatusUnauthorized, send(t, s, http.MethodPost, "/", "", nil).code)
	r = send(t, s, http.MethodPost, "/", "Bearer "+testToken, strings.NewReader(""))
	require.Equal(t, http.StatusMethodNotAllowed, r.code)
	require.Equal(t, "GET, HEAD", r.header.Get("Allow"))
}

func TestPageRefusesForeignHosts(t *testing.T) {
	s := startServer(t, newHistoryBackend())
	req, err := http.NewRequest(http.MethodGet, "http://"+s.Addr()+"/", nil)
	require.NoError(t, err)
	req.Host = "attacker.example" // a DNS-rebound page must not read the fleet
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
}
