// Package vpn renders the overlay VPN: the hub's server configuration and each
// node's client configuration, for OpenVPN (certificates signed by a CA kept
// in the cluster, revocation through a CRL) or WireGuard (one key pair per
// node; revocation removes the node's peer from the hub).
package vpn

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// Backend names a VPN implementation.
type Backend string

const (
	OpenVPN   Backend = "openvpn"
	WireGuard Backend = "wireguard"
)

// Backends are the supported values of --vpn.
var Backends = []Backend{OpenVPN, WireGuard}

// ParseBackend validates a --vpn value.
func ParseBackend(s string) (Backend, error) {
	b := Backend(s)
	if !slices.Contains(Backends, b) {
		return "", fmt.Errorf("unknown VPN backend %q: use %q or %q", s, OpenVPN, WireGuard)
	}
	return b, nil
}

// DefaultPort is the hub's UDP port when the endpoint names none.
func (b Backend) DefaultPort() int {
	if b == WireGuard {
		return 51820
	}
	return 1194
}

// InterfaceName is the tunnel device on the hub and on every node.
const InterfaceName = "stage0"

// Network is the overlay as every configuration sees it.
type Network struct {
	Prefix netip.Prefix
	// Hub is the hub's overlay address.
	Hub netip.Addr
	// Endpoint is host:port where nodes reach the hub over the underlay.
	Endpoint string
}

// Netmask is the prefix as a dotted mask (OpenVPN's notation).
func (n Network) Netmask() string {
	return net.IP(net.CIDRMask(n.Prefix.Bits(), 32)).String()
}

// EndpointHostPort splits Endpoint, which must be a canonical HOST:PORT
// (see SplitEndpoint): it lands in every node's configuration.
func (n Network) EndpointHostPort() (string, int, error) {
	host, port, err := SplitEndpoint(n.Endpoint)
	if err != nil {
		return "", 0, fmt.Errorf("invalid hub endpoint: %w", err)
	}
	return host, port, nil
}

// Peer is an enrolled node as the hub sees it.
type Peer struct {
	Name string
	Site string
	IP   netip.Addr
	// WireGuardPublicKey is set for the WireGuard backend.
	WireGuardPublicKey string
}
