package vpn

import (
	"bytes"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Every value that lands in a VPN configuration, a file name or the join
// bundle is checked here, whether it comes from a flag or from the cluster:
// a value that is not a host, a port, a key or a name is refused, so none can
// add a line or a directive.

// SplitEndpoint checks a canonical HOST:PORT, as init stores it: HOST an IP
// address or a DNS name, PORT a decimal 1-65535 without sign or leading zero,
// an IPv6 address in brackets.
func SplitEndpoint(endpoint string) (string, int, error) {
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not HOST:PORT: %w", endpoint, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 || strconv.Itoa(p) != port {
		return "", 0, fmt.Errorf("%q: port must be a number 1-65535 written without sign or leading zero", endpoint)
	}
	if err := ValidateHost(host); err != nil {
		return "", 0, fmt.Errorf("%q: %w", endpoint, err)
	}
	if net.JoinHostPort(host, port) != endpoint {
		return "", 0, fmt.Errorf("%q is not in canonical form %q", endpoint, net.JoinHostPort(host, port))
	}
	return host, p, nil
}

// ValidateHost accepts an IP address (no zone) or a DNS name.
func ValidateHost(host string) error {
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return fmt.Errorf("%q: an address with a zone cannot be dialed from another machine", host)
		}
		return nil
	}
	if errs := validation.IsDNS1123Subdomain(strings.ToLower(host)); len(errs) > 0 {
		return fmt.Errorf("%q is neither an IP address nor a DNS name", host)
	}
	return nil
}

// ValidatePeer checks what the hub's configuration is made of for one node:
// the name becomes a file name (client-config-dir) and a comment, the key a
// configuration line.
func ValidatePeer(p Peer, backend Backend) error {
	if errs := validation.IsDNS1123Subdomain(p.Name); len(errs) > 0 {
		return fmt.Errorf("node name %q: %s", p.Name, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Label(p.Site); len(errs) > 0 {
		return fmt.Errorf("site name %q of node %s: %s", p.Site, p.Name, strings.Join(errs, "; "))
	}
	if !p.IP.Is4() {
		return fmt.Errorf("overlay IP %q of node %s is not an IPv4 address", p.IP, p.Name)
	}
	if backend == WireGuard {
		if err := ValidateWireGuardKey(p.WireGuardPublicKey); err != nil {
			return fmt.Errorf("WireGuard public key of node %s: %w", p.Name, err)
		}
	}
	return nil
}

// ValidateWireGuardKey accepts a key as wg(8) writes it: the standard
// base64 form of 32 bytes.
func ValidateWireGuardKey(key string) error {
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(raw) != 32 || base64.StdEncoding.EncodeToString(raw) != key {
		// The value may be a private key: it is not repeated.
		return fmt.Errorf("not a WireGuard key (44 characters of base64 for 32 bytes)")
	}
	return nil
}

var tlsCryptKey = regexp.MustCompile(`\A-----BEGIN OpenVPN Static key V1-----\n(?:[0-9a-f]{32}\n){16}-----END OpenVPN Static key V1-----\n\z`)

// ValidateTLSCryptKey accepts an OpenVPN static key as NewTLSCryptKey writes it.
func ValidateTLSCryptKey(key []byte) error {
	if !tlsCryptKey.Match(key) {
		return fmt.Errorf("the tls-crypt key is not an OpenVPN static key (16 lines of 32 hex digits between the BEGIN and END lines)")
	}
	return nil
}

// CanonicalPEM decodes data as one or more PEM blocks of the given types and
// nothing else (no headers, no text around them) and encodes them again, so
// that what lands between <ca> and </ca> can only be base64 lines.
func CanonicalPEM(what string, data []byte, types ...string) ([]byte, error) {
	var out []byte
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if !slices.Contains(types, block.Type) || len(block.Headers) > 0 {
			return nil, fmt.Errorf("%s: unexpected PEM block %q (want %s, without headers)", what, block.Type, strings.Join(types, " or "))
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: block.Bytes})...)
	}
	if len(out) == 0 || len(bytes.TrimSpace(rest)) > 0 {
		return nil, fmt.Errorf("%s: not PEM (%s), or text follows it", what, strings.Join(types, " or "))
	}
	return out, nil
}

// ValidateInterfaceName accepts a network interface name as Linux does
// (1-15 characters) made of letters, digits, '-', '_' and '.': it is
// passed to wg(8) and ip(8).
func ValidateInterfaceName(name string) error {
	if name == "" || len(name) > 15 || name == "." || name == ".." {
		return fmt.Errorf("interface name %q: want 1-15 characters", name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.", c)) {
			return fmt.Errorf("interface name %q: only letters, digits, '-', '_' and '.'", name)
		}
	}
	return nil
}
