package main

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"sync"
	"time"
)

// defaultEchoPort is the echo protocol's port (RFC 862). A client on the
// VM's network holds a connection to it across resizes and migrations: the
// byte stream it gets back shows whether the connection survived intact.
const defaultEchoPort = 7

// acceptRetry spaces out attempts to accept after a failure such as running
// out of file descriptors, which passes as connections close.
const acceptRetry = 100 * time.Millisecond

// serveEcho runs the echo service on addr until ctx ends. The agent's other
// work does not depend on it: a failure is logged, not fatal.
func serveEcho(ctx context.Context, addr string, logger *log.Logger) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		logger.Printf("echo service: %v", err)
		return
	}
	logger.Printf("echo service on %s", ln.Addr())
	echo(ctx, ln, logger)
}

// echo sends every byte a connection on ln receives back on it, for any
// number of connections at once, and closes a connection once its peer has
// finished sending and everything was echoed. When ctx ends it closes ln and
// every connection, and returns once all are done.
func echo(ctx context.Context, ln net.Listener, logger *log.Logger) {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		switch {
		case ctx.Err() != nil:
			if err == nil {
				c.Close()
			}
			return
		case errors.Is(err, net.ErrClosed):
			logger.Printf("echo service: the listener closed")
			return
		case err != nil:
			logger.Printf("echo service: %v", err)
			select {
			case <-ctx.Done():
			case <-time.After(acceptRetry):
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			unblock := context.AfterFunc(ctx, func() { c.Close() })
			defer unblock()
			// Ends at the peer's EOF or at an error; either way the
			// connection is done.
			_, _ = io.Copy(c, c)
		}()
	}
}
