package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// startEcho runs the echo service on a loopback port; stop ends it and
// returns once it has.
func startEcho(t *testing.T) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		echo(ctx, ln, log.New(io.Discard, "", 0))
	}()
	stop = func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// roundTrip sends size random bytes on c in random-sized writes while it
// reads the echo, half-closes, and wants exactly the same bytes back, then
// EOF.
func roundTrip(c *net.TCPConn, size int) error {
	sent := make([]byte, size)
	for i := range sent {
		sent[i] = byte(rand.Uint32())
	}
	writes := make(chan error, 1)
	go func() {
		for rest := sent; len(rest) > 0; {
			n := min(len(rest), 1+rand.IntN(64<<10))
			if _, err := c.Write(rest[:n]); err != nil {
				writes <- err
				return
			}
			rest = rest[n:]
		}
		writes <- c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err := errors.Join(err, <-writes); err != nil {
		return err
	}
	if len(got) != len(sent) {
		return fmt.Errorf("%d bytes sent, %d echoed", len(sent), len(got))
	}
	for i := range sent {
		if got[i] != sent[i] {
			return fmt.Errorf("byte %d: sent %#x, echoed %#x", i, sent[i], got[i])
		}
	}
	return nil
}

func dial(addr string) (*net.TCPConn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

func TestEchoReturnsEveryByteOnConcurrentConnections(t *testing.T) {
	addr, _ := startEcho(t)
	const conns = 16
	errs := make(chan error, conns)
	for i := range conns {
		go func() {
			c, err := dial(addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			// A length of its own: streams cannot pass for each other.
			errs <- roundTrip(c, 1<<20+i)
		}()
	}
	for range conns {
		require.NoError(t, <-errs)
	}
}

func TestEchoStopsWithItsContext(t *testing.T) {
	addr, stop := startEcho(t)
	idle, err := dial(addr)
	require.NoError(t, err)
	defer idle.Close()
	// The service has the connection once it echoes on it.
	_, err = idle.Write([]byte("x"))
	require.NoError(t, err)
	_, err = io.ReadFull(idle, make([]byte, 1))
	require.NoError(t, err)

	stop()
	require.NoError(t, idle.SetReadDeadline(time.Now().Add(10*time.Second)))
	n, err := idle.Read(make([]byte, 1))
	require.Zero(t, n)
	require.ErrorIs(t, err, io.EOF, "the service closed the open connection")
	_, err = net.Dial("tcp", addr)
	require.Error(t, err, "nothing listens any more")
}

func TestServeEchoLogsAPortItCannotHave(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	var out bytes.Buffer
	serveEcho(context.Background(), taken.Addr().String(), log.New(&out, "", 0))
	require.Contains(t, out.String(), "echo service: listen tcp "+taken.Addr().String())
}
