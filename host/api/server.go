package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

const (
	maxBodyBytes = 1 << 20
	// A tick may resize VMs and wait for guests, so a POST /v1/tick can
	// legitimately take minutes; the client's context bounds it, not us.
	writeTimeout = 10 * time.Minute
)

// Server serves the API on a loopback address.
type Server struct {
	addr string
	// token is stored hashed so that comparing it costs the same whatever
	// the length of the candidate.
	token   [sha256.Size]byte
	backend Backend
	log     hclog.Logger
	srv     *http.Server

	mu   sync.Mutex
	ln   net.Listener
	done chan struct{} // closed when Serve returns
}

// New checks addr and prepares a server; Start listens. addr must be a
// loopback address or localhost: the API controls VMs, so reaching it from
// elsewhere goes through the machine's own access control (ssh). token is
// required as "Authorization: Bearer <token>" on every request that is not a
// read (GET or HEAD).
func New(addr, token string, b Backend, metrics http.Handler, log hclog.Logger) (*Server, error) {
	if err := CheckLoopback(addr); err != nil {
		return nil, fmt.Errorf("api address: %w", err)
	}
	switch {
	case token == "":
		return nil, errors.New("api token is empty")
	case b == nil:
		return nil, errors.New("api backend is nil")
	case metrics == nil:
		return nil, errors.New("api metrics handler is nil")
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	s := &Server{addr: addr, token: sha256.Sum256([]byte(token)), backend: b, log: log}
	s.srv = &http.Server{
		Handler:           s.routes(metrics),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	return s, nil
}

// Start listens, then serves in the background until Shutdown. Listen errors
// (address in use, ...) are returned here.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return errors.New("api server already started")
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	// "localhost" passed New's check by name; what it resolved to is what counts.
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		_ = ln.Close()
		return fmt.Errorf("api address %s resolved to %s, which is not loopback", s.addr, ip)
	}
	s.ln, s.done = ln, make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("api server stopped", "error", err)
		}
	}()
	s.log.Info("api listening", "address", ln.Addr().String())
	return nil
}

// Addr is the address the server listens on (with the real port when it
// was asked for port 0), or the configured one before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return s.addr
	}
	return s.ln.Addr().String()
}

// Shutdown stops accepting requests and waits, up to ctx, for those in
// flight to finish.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return err
	}
	select {
	case <-done:
		return err
	case <-ctx.Done():
		return errors.Join(err, ctx.Err())
	}
}

// CheckLoopback keeps the API local: it controls VMs, so reaching it from
// elsewhere goes through the machine's own access control (ssh), never an
// open port. It accepts a loopback IP or the name localhost with a port; an
// empty host would listen on every interface. The config checks it early,
// with the attribute's location, and New again before listening.
func CheckLoopback(address string) error {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("want host:port such as \"127.0.0.1:7311\": %v", err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if host == "localhost" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q is not a loopback address (127.0.0.0/8, ::1 or localhost): Vertigo's API is local by design", host)
}
