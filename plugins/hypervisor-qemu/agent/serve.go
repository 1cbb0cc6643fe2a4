package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentproto"
)

// serve talks to the host over the port, one connection after another: the
// plugin may restart, or another plugin may recover the VM, and each new
// host is greeted with a hello. It returns when the port fails.
func (a *agent) serve(ctx context.Context, p *port) error {
	go a.send(ctx, p)
	for {
		if err := p.waitHost(); err != nil {
			return err
		}
		a.out.restart(a.hello())
		a.log.printf("host connected")
		if err := a.readRequests(p); err != nil {
			return err
		}
		a.log.printf("host disconnected")
	}
}

// readRequests answers the host's lines until it disconnects.
func (a *agent) readRequests(p *port) error {
	r := agentproto.NewReader(p.f)
	for {
		m, err := r.Read()
		var bad *agentproto.MalformedError
		switch {
		case err == nil:
			a.answer(m)
		case errors.Is(err, io.EOF):
			return nil
		case errors.As(err, &bad):
			a.reject(idOf(bad.Line), bad.Err)
		case errors.Is(err, bufio.ErrTooLong):
			// The scanner is stuck on the line; a fresh one resumes after
			// it (the line's tail comes through as one more malformed line).
			a.reject(0, errors.New("line: longer than the protocol's limit"))
			r = agentproto.NewReader(p.f)
		default:
			return fmt.Errorf("reading the port: %w", err)
		}
	}
}

// send writes the outbox to the port. While no host is connected the
// kernel holds writes back, so a line taken just before a host left goes to
// the next host, ahead of its hello; everything else queued for the old host
// is dropped by restart.
func (a *agent) send(ctx context.Context, p *port) {
	w := agentproto.NewWriter(p.f)
	for {
		m, err := a.out.next(ctx)
		if err != nil {
			return
		}
		a.log.error("send", w.Write(m))
	}
}
