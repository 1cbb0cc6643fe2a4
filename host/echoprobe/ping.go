package echoprobe

import (
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// PingResult counts ICMP echoes: a request without a reply is a lost packet.
type PingResult struct {
	Sent, Received int
	// LongestGap is the longest time between two replies.
	LongestGap time.Duration
}

// Lost is the number of requests never answered.
func (r PingResult) Lost() int { return r.Sent - r.Received }

// Pinger sends an ICMP echo request at a fixed rate, as a client probing a
// VM does, and counts the replies. The guest's kernel answers: it needs
// nothing of the guest but its network.
type Pinger struct {
	conn *icmp.PacketConn
	dst  *net.IPAddr
	id   int

	stop  chan struct{}
	wrote chan struct{}
	read  chan struct{}

	mu      sync.Mutex
	res     PingResult
	answers map[int]bool
	last    time.Time
}

// Ping starts probing ip every interval from the named network namespace
// ("" for the caller's). It needs a raw socket: root.
func Ping(namespace string, ip net.IP, every time.Duration) (*Pinger, error) {
	var conn *icmp.PacketConn
	err := inNamespace(namespace, func() (err error) {
		conn, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening an ICMP socket: %w", err)
	}
	p := &Pinger{
		conn: conn, dst: &net.IPAddr{IP: ip}, id: os.Getpid() & 0xffff,
		stop: make(chan struct{}), wrote: make(chan struct{}), read: make(chan struct{}),
		answers: map[int]bool{}, last: time.Now(),
	}
	go p.send(every)
	go p.receive()
	return p, nil
}

func (p *Pinger) send(every time.Duration) {
	defer close(p.wrote)
	t := time.NewTicker(every)
	defer t.Stop()
	for seq := 0; ; seq++ {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: p.id, Seq: seq & 0xffff, Data: []byte("vertigo")}}
		b, err := msg.Marshal(nil)
		if err != nil {
			continue
		}
		// A failed send is a lost packet like any other.
		_, _ = p.conn.WriteTo(b, p.dst)
		p.mu.Lock()
		p.res.Sent++
		p.mu.Unlock()
	}
}

func (p *Pinger) receive() {
	defer close(p.read)
	buf := make([]byte, 1500)
	for {
		n, from, err := p.conn.ReadFrom(buf)
		if err != nil {
			return // closed by Stop
		}
		msg, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || msg.Type != ipv4.ICMPTypeEchoReply || from.String() != p.dst.String() {
			continue
		}
		echo, ok := msg.Body.(*icmp.Echo)
		if !ok || echo.ID != p.id {
			continue
		}
		now := time.Now()
		p.mu.Lock()
		if !p.answers[echo.Seq] {
			p.answers[echo.Seq] = true
			p.res.Received++
			p.res.LongestGap = max(p.res.LongestGap, now.Sub(p.last))
			p.last = now
		}
		p.mu.Unlock()
	}
}

// Snapshot is the result so far.
func (p *Pinger) Snapshot() PingResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.res
}

// Stop ends sending, gives the last replies drain to arrive, and closes the
// socket. Call it once.
func (p *Pinger) Stop(drain time.Duration) PingResult {
	close(p.stop)
	<-p.wrote
	_ = p.conn.SetReadDeadline(time.Now().Add(drain))
	<-p.read
	p.conn.Close()
	return p.Snapshot()
}
