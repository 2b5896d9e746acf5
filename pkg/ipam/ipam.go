// Package ipam hands out overlay addresses. It is pure: the caller loads the
// allocation table, allocates or releases, and writes the table back with
// optimistic concurrency (see package site), so two writers never keep the
// same address.
package ipam

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// ErrExhausted is returned when every address of the pool is taken.
var ErrExhausted = errors.New("overlay address pool exhausted")

// Pool is an IPv4 overlay network. Its first usable address belongs to the
// VPN hub; nodes get the others.
type Pool struct {
	prefix netip.Prefix
	hub    netip.Addr
	last   netip.Addr
}

// NewPool parses an IPv4 CIDR such as 10.23.0.0/16.
func NewPool(cidr string) (*Pool, error) {
	prefix, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("invalid overlay CIDR %q: %w", cidr, err)
	}
	if !prefix.Addr().Is4() {
		return nil, fmt.Errorf("overlay CIDR %q is not IPv4: use an IPv4 range such as 10.23.0.0/16", cidr)
	}
	if prefix.Masked() != prefix {
		return nil, fmt.Errorf("overlay CIDR %q has host bits set: did you mean %s?", cidr, prefix.Masked())
	}
	if prefix.Bits() > 29 {
		return nil, fmt.Errorf("overlay CIDR %q is too small: use /29 or larger (the hub takes one address)", cidr)
	}
	if prefix.Bits() < 8 {
		return nil, fmt.Errorf("overlay CIDR %q is too large: use /8 or smaller", cidr)
	}
	return &Pool{prefix: prefix, hub: prefix.Addr().Next(), last: broadcast(prefix).Prev()}, nil
}

// Prefix is the overlay network.
func (p *Pool) Prefix() netip.Prefix { return p.prefix }

// Hub is the hub's overlay address (the first usable one).
func (p *Pool) Hub() netip.Addr { return p.hub }

// Size is how many node addresses the pool has.
func (p *Pool) Size() int {
	return int(ipv4(p.last)-ipv4(p.hub.Next())) + 1
}

// Contains reports whether ip is a node address of the pool.
func (p *Pool) Contains(ip netip.Addr) bool {
	return p.prefix.Contains(ip) && ip.Compare(p.hub) > 0 && ip.Compare(p.last) <= 0
}

// Allocations maps each taken address to the node that holds it.
type Allocations map[netip.Addr]string

// Allocate gives owner the lowest free address. An owner holds at most one.
func (p *Pool) Allocate(a Allocations, owner string) (netip.Addr, error) {
	if owner == "" {
		return netip.Addr{}, errors.New("an allocation needs an owner")
	}
	if ip, ok := a.AddressOf(owner); ok {
		return netip.Addr{}, fmt.Errorf("%q already holds overlay address %s", owner, ip)
	}
	for ip := p.hub.Next(); ip.Compare(p.last) <= 0; ip = ip.Next() {
		if _, taken := a[ip]; !taken {
			a[ip] = owner
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: all %d addresses of %s are in use", ErrExhausted, p.Size(), p.prefix)
}

// AddressOf returns the address owner holds.
func (a Allocations) AddressOf(owner string) (netip.Addr, bool) {
	for ip, o := range a {
		if o == owner {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// Release frees the address owner holds and returns it.
func (a Allocations) Release(owner string) (netip.Addr, bool) {
	ip, ok := a.AddressOf(owner)
	if ok {
		delete(a, ip)
	}
	return ip, ok
}

// Parse reads the table written by Format: one "ADDRESS OWNER" per line.
func Parse(text string) (Allocations, error) {
	a := Allocations{}
	scanner := bufio.NewScanner(strings.NewReader(text))
	for line := 1; scanner.Scan(); line++ {
		fields := strings.Fields(scanner.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("allocation table line %d: want \"ADDRESS OWNER\", got %q", line, scanner.Text())
		}
		ip, err := netip.ParseAddr(fields[0])
		if err != nil {
			return nil, fmt.Errorf("allocation table line %d: %w", line, err)
		}
		if prev, dup := a[ip]; dup {
			return nil, fmt.Errorf("allocation table line %d: %s is held by both %q and %q", line, ip, prev, fields[1])
		}
		a[ip] = fields[1]
	}
	return a, scanner.Err()
}

// Format writes the table sorted by address, so that it diffs well.
func (a Allocations) Format() string {
	ips := make([]netip.Addr, 0, len(a))
	for ip := range a {
		ips = append(ips, ip)
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	var b strings.Builder
	for _, ip := range ips {
		fmt.Fprintf(&b, "%s %s\n", ip, a[ip])
	}
	return b.String()
}

// Overlaps reports whether two networks share an address.
func Overlaps(a, b netip.Prefix) bool { return a.Overlaps(b) }

func broadcast(p netip.Prefix) netip.Addr {
	v := ipv4(p.Addr()) | (1<<(32-p.Bits()) - 1)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func ipv4(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
