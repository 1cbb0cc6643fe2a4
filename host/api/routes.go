package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// tokenHint tells an operator where the token lives without the server
// knowing the path (the config does).
const tokenHint = "see api.token_file in the config"

func (s *Server) routes(metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	for _, r := range []struct {
		method, path string
		handler      http.Handler
	}{
		{http.MethodGet, "/v1/status", http.HandlerFunc(s.status)},
		{http.MethodGet, "/v1/history", http.HandlerFunc(s.history)},
		{http.MethodPost, "/v1/tick", http.HandlerFunc(s.tick)},
		{http.MethodPost, "/v1/plugins/{name}/restart", http.HandlerFunc(s.restartPlugin)},
		{http.MethodPost, "/v1/vms/{name}/load", http.HandlerFunc(s.loadVM)},
		{http.MethodPost, "/v1/vms/{name}/migrate", http.HandlerFunc(s.migrateVM)},
		{http.MethodGet, "/metrics", metrics},
		{http.MethodGet, "/healthz", http.HandlerFunc(healthz)},
		{http.MethodGet, "/{$}", http.HandlerFunc(page)},
		{http.MethodGet, "/web/", assets},
	} {
		mux.Handle(r.method+" "+r.path, r.handler)
		// The method-less pattern catches every other method, so that a 405
		// is JSON like every other error.
		mux.Handle(r.path, methodNotAllowed(r.method))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no route for %s %s", r.Method, r.URL.Path)
	})
	return s.checkHost(s.authorize(limitBody(mux)))
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.backend.Status(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) tick(w http.ResponseWriter, r *http.Request) {
	if !requireNoBody(w, r) {
		return
	}
	s.log.Info("tick requested through the api")
	if err := s.backend.Tick(r.Context()); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) restartPlugin(w http.ResponseWriter, r *http.Request) {
	if !requireNoBody(w, r) {
		return
	}
	name := r.PathValue("name")
	s.log.Info("plugin restart requested through the api", "plugin", name)
	if err := s.backend.RestartPlugin(r.Context(), name); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) loadVM(w http.ResponseWriter, r *http.Request) {
	var req LoadRequest
	if !decodeBody(w, r, &req) {
		return
	}
	switch {
	case req.DurationNs <= 0:
		writeError(w, http.StatusBadRequest, "duration_ns: must be > 0")
		return
	case req.CPUWorkers == 0 && req.MemoryBytes == 0:
		writeError(w, http.StatusBadRequest, "cpu_workers, memory_bytes: ask for some CPU or memory load")
		return
	}
	name := r.PathValue("name")
	s.log.Info("load requested through the api", "vm", name, "cpu_workers", req.CPUWorkers, "memory_bytes", req.MemoryBytes, "duration", req.DurationNs)
	if err := s.backend.LoadVM(r.Context(), name, req); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// migrateVM answers with one JSON Migration per line as the move goes, and
// a last line that is either the completed Migration or {"error": ...}:
// the client draws a progress bar from them.
func (s *Server) migrateVM(w http.ResponseWriter, r *http.Request) {
	var req MigrateRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.To == "" {
		writeError(w, http.StatusBadRequest, "to: name the target node")
		return
	}
	name := r.PathValue("name")
	s.log.Info("migration requested through the api", "vm", name, "to", req.To)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	send := func(v any) {
		_ = enc.Encode(v)
		if flusher != nil {
			flusher.Flush()
		}
	}
	if err := s.backend.MigrateVM(r.Context(), name, req.To, func(m Migration) { send(m) }); err != nil {
		send(errorBody{Error: err.Error()})
	}
}

// decodeBody decodes a JSON request body, refusing unknown fields so a
// misspelt option is an error rather than a default.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "request body over %d bytes", tooLarge.Limit)
	case err != nil:
		writeError(w, http.StatusBadRequest, "request body: %v", err)
	default:
		return true
	}
	return false
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// fail answers a backend error: 404 for ErrNotFound, 400 for ErrInvalid,
// else 500.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "%v", err)
		return
	case errors.Is(err, ErrInvalid):
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	s.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	writeError(w, http.StatusInternalServerError, "%v", err)
}

func methodNotAllowed(method string) http.Handler {
	allow := method
	if method == http.MethodGet {
		allow += ", " + http.MethodHead // a GET pattern serves HEAD too
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, "%s %s: method not allowed, use %s", r.Method, r.URL.Path, method)
	})
}

// checkHost refuses requests addressed to any host but loopback. Listening
// on loopback is not enough: a web page can point its own domain at
// 127.0.0.1 (DNS rebinding) and read the status from the browser.
func (s *Server) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]") // "[::1]" without a port
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			s.log.Warn("api request for a foreign host refused", "host", r.Host, "remote", r.RemoteAddr)
			writeError(w, http.StatusForbidden, "host %q is not a loopback address", r.Host)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authorize requires the bearer token on everything but reads.
func (s *Server) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		token, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			unauthorized(w, `missing token: send "Authorization: Bearer <token>"; `+tokenHint)
			return
		}
		got := sha256.Sum256([]byte(token))
		if subtle.ConstantTimeCompare(got[:], s.token[:]) != 1 {
			s.log.Warn("api request with a wrong token refused", "method", r.Method, "path", r.URL.Path)
			unauthorized(w, "wrong token; "+tokenHint)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func bearer(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	token = strings.TrimSpace(token)
	return token, ok && strings.EqualFold(scheme, "Bearer") && token != ""
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="vertigo"`)
	writeError(w, http.StatusUnauthorized, "%s", msg)
}

func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

// requireNoBody refuses a request body: no route takes one yet, and a client
// sending one expects it to mean something we would silently ignore.
func requireNoBody(w http.ResponseWriter, r *http.Request) bool {
	n, err := io.Copy(io.Discard, r.Body)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "request body over %d bytes", tooLarge.Limit)
	case err != nil:
		writeError(w, http.StatusBadRequest, "reading request body: %v", err)
	case n > 0:
		writeError(w, http.StatusBadRequest, "%s %s takes no request body", r.Method, r.URL.Path)
	default:
		return true
	}
	return false
}

type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, errorBody{Error: fmt.Sprintf(format, args...)})
}

// writeJSON encodes before writing the header, so a value that cannot be
// encoded is a 500 rather than a truncated 200.
func writeJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		body, _ = json.Marshal(errorBody{Error: "encoding response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}
