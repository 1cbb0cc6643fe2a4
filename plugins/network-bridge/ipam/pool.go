// Package ipam is the pure bookkeeping of the network plugin: which
// addresses, MACs and tap names are handed out, and the state file that
// keeps them across restarts. It touches no network device.
package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// ErrExhausted is returned when a pool has no free address left.
var ErrExhausted = errors.New("no free address left")

// Pool is an IPv4 subnet whose host addresses are handed out one by one.
// The network and broadcast addresses are never handed out, nor are the
// reserved ones.
type Pool struct {
	prefix   netip.Prefix
	reserved []netip.Addr
}

// maxPrefixBits leaves at least two host addresses: a gateway and one more.
const maxPrefixBits = 30

// ParsePool parses a CIDR such as "10.77.0.0/24". The prefix must be the
// subnet's own (no host bits set) and leave room for two hosts.
func ParsePool(cidr string) (Pool, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return Pool{}, fmt.Errorf("%q is not a CIDR such as 10.77.0.0/24", cidr)
	}
	if !p.Addr().Is4() {
		return Pool{}, fmt.Errorf("%q is not an IPv4 subnet", cidr)
	}
	if p.Masked() != p {
		return Pool{}, fmt.Errorf("%q has host bits set; the subnet is %s", cidr, p.Masked())
	}
	if p.Bits() > maxPrefixBits {
		return Pool{}, fmt.Errorf("%q is too small: the prefix must be /%d or shorter", cidr, maxPrefixBits)
	}
	return Pool{prefix: p}, nil
}

// Prefix is the pool's subnet.
func (p Pool) Prefix() netip.Prefix { return p.prefix }

// First is the subnet's first host address, by convention its gateway.
func (p Pool) First() netip.Addr { return p.prefix.Addr().Next() }

// Reserve returns a pool that never hands out addr.
func (p Pool) Reserve(addr netip.Addr) Pool {
	p.reserved = append(append([]netip.Addr(nil), p.reserved...), addr)
	return p
}

// Contains says whether addr is a host address of the subnet.
func (p Pool) Contains(addr netip.Addr) bool {
	return p.prefix.Contains(addr) && addr != p.prefix.Addr() && addr != p.broadcast()
}

// CIDR writes addr with the pool's prefix length, e.g. "10.77.0.5/24".
func (p Pool) CIDR(addr netip.Addr) string {
	return netip.PrefixFrom(addr, p.prefix.Bits()).String()
}

func (p Pool) broadcast() netip.Addr {
	a := p.prefix.Addr().As4()
	host := uint32(1)<<(32-p.prefix.Bits()) - 1
	v := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Allocate returns the first free host address after last, wrapping around
// the subnet. Starting after the last address handed out, rather than at
// the lowest free one, keeps a just-freed address out of use as long as
// possible, so that peers' stale ARP entries for it age out first. last may
// be the zero Addr.
func (p Pool) Allocate(taken func(netip.Addr) bool, last netip.Addr) (netip.Addr, error) {
	a := p.First()
	if p.Contains(last) {
		a = p.next(last)
	}
	for range p.hosts() {
		if !slices.Contains(p.reserved, a) && !taken(a) {
			return a, nil
		}
		a = p.next(a)
	}
	return netip.Addr{}, fmt.Errorf("%s: %w", p.prefix, ErrExhausted)
}

// next is the host address after a, wrapping from the last to the first.
func (p Pool) next(a netip.Addr) netip.Addr {
	if n := a.Next(); p.Contains(n) {
		return n
	}
	return p.First()
}

// hosts is the number of host addresses in the subnet.
func (p Pool) hosts() int { return 1<<(32-p.prefix.Bits()) - 2 }
