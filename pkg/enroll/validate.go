// Package enroll implements the enrollment workflows behind `kubectl stage
// init`, `join`, `leave` and `hub-config`: it validates input, checks
// permissions, and changes the cluster so that a failure leaves no
// half-written state (what was written is undone) or, for leave, a state a
// re-run finishes.
package enroll

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kubectl-stage/kubectl-stage/pkg/input"
	"github.com/kubectl-stage/kubectl-stage/pkg/ipam"
	"github.com/kubectl-stage/kubectl-stage/pkg/mesh"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

// The inputs of the enrollment workflows that their errors can point at.
const (
	InputNode               input.Name = "node name"
	InputOverlayCIDR        input.Name = "overlay CIDR"
	InputVPN                input.Name = "VPN backend"
	InputHubEndpoint        input.Name = "hub endpoint"
	InputAPIServerEndpoint  input.Name = "API server endpoint"
	InputPodCIDR            input.Name = "pod CIDR"
	InputServiceCIDR        input.Name = "service CIDR"
	InputTokenTTL           input.Name = "token lifetime"
	InputCredentialValidity input.Name = "credential validity"
	InputSkipCertCheck      input.Name = "skipping the API server certificate check"
	InputForce              input.Name = "evicting unmanaged pods"
	InputEndpoint           input.Name = "node endpoint"
	InputRelayOnly          input.Name = "relay-only"
)

// ValidateSiteName checks a site name: it becomes a label value and part of
// object names, so it must be a DNS-1123 label.
func ValidateSiteName(name string) error {
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return fmt.Errorf("invalid site name %q: %s (for example: tokyo, eu-west-1)", name, strings.Join(errs, "; "))
	}
	return nil
}

// ValidateNodeName checks a node name: a DNS-1123 subdomain, as Kubernetes
// node names are, and short enough to prefix with "node-".
func ValidateNodeName(name string) error {
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fmt.Errorf("invalid node name %q: %s (for example: tokyo-1)", name, strings.Join(errs, "; "))
	}
	if len(name) > validation.DNS1123SubdomainMaxLength-len("node-") {
		return fmt.Errorf("invalid node name %q: at most %d characters", name, validation.DNS1123SubdomainMaxLength-len("node-"))
	}
	return nil
}

// NormalizeEndpoint checks HOST[:PORT] and adds defaultPort when no port is
// given; name says which endpoint it is in the errors ("hub endpoint").
func NormalizeEndpoint(name, endpoint string, defaultPort int) (string, error) {
	if endpoint == "" {
		return "", fmt.Errorf("the %s is required: the address nodes dial, such as vpn.example.org:%d", name, defaultPort)
	}
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		host, port = endpoint, strconv.Itoa(defaultPort)
		if strings.Contains(endpoint, ":") && !strings.HasPrefix(endpoint, "[") && net.ParseIP(endpoint) == nil {
			return "", fmt.Errorf("invalid %s %q: want HOST or HOST:PORT", name, endpoint)
		}
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 || strings.ContainsAny(port, "+-") {
		return "", fmt.Errorf("invalid %s %q: port must be 1-65535", name, endpoint)
	}
	if err := vpn.ValidateHost(host); err != nil {
		return "", fmt.Errorf("invalid %s %q: %w", name, endpoint, err)
	}
	// Stored canonically (01194 -> 1194), as Config.Validate wants it.
	canonical := net.JoinHostPort(host, strconv.Itoa(p))
	if _, _, err := vpn.SplitEndpoint(canonical); err != nil {
		return "", fmt.Errorf("invalid %s %q: %w", name, endpoint, err)
	}
	return canonical, nil
}

// CheckOverlap refuses an overlay that shares addresses with a cluster
// range; rangeInput is the input that gave the range, blamed when it does
// not parse.
func CheckOverlap(overlay *ipam.Pool, name string, rangeInput input.Name, cidr string) error {
	if cidr == "" {
		return nil
	}
	for _, part := range strings.Split(cidr, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(part))
		if err != nil {
			return input.Fix(fmt.Errorf("invalid %s CIDR %q: %w", name, part, err), input.Use(rangeInput))
		}
		if ipam.Overlaps(overlay.Prefix(), p) {
			return input.Fix(fmt.Errorf("overlay CIDR %s overlaps the cluster's %s CIDR %s: choose an overlay CIDR outside it (for example 10.23.0.0/16)", overlay.Prefix(), name, p),
				input.Use(InputOverlayCIDR))
		}
	}
	return nil
}

// ValidateNodeEndpoint checks the underlay HOST:PORT a node declares at
// join, where other sites send its WireGuard packets.
func ValidateNodeEndpoint(endpoint string) error {
	if endpoint == mesh.EndpointAuto {
		return nil
	}
	if _, _, err := vpn.SplitEndpoint(endpoint); err != nil {
		return input.Fix(fmt.Errorf("invalid node endpoint: %w; give the underlay address and UDP port where other sites reach this node's WireGuard, such as 203.0.113.7:51820, or auto for the address the hub sees its packets come from (a public address the node does not know), or leave it out for a node behind NAT (its traffic then goes through the hub)", err),
			input.Use(InputEndpoint))
	}
	return nil
}
