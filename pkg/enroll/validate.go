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

	"github.com/kubectl-stage/kubectl-stage/pkg/ipam"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
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

// NormalizeEndpoint checks HOST[:PORT] and adds defaultPort when no port is given.
func NormalizeEndpoint(flag, endpoint string, defaultPort int) (string, error) {
	if endpoint == "" {
		return "", fmt.Errorf("%s is required: the address nodes dial, such as vpn.example.org:%d", flag, defaultPort)
	}
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		host, port = endpoint, strconv.Itoa(defaultPort)
		if strings.Contains(endpoint, ":") && !strings.HasPrefix(endpoint, "[") && net.ParseIP(endpoint) == nil {
			return "", fmt.Errorf("invalid %s %q: want HOST or HOST:PORT", flag, endpoint)
		}
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 || strings.ContainsAny(port, "+-") {
		return "", fmt.Errorf("invalid %s %q: port must be 1-65535", flag, endpoint)
	}
	if err := vpn.ValidateHost(host); err != nil {
		return "", fmt.Errorf("invalid %s %q: %w", flag, endpoint, err)
	}
	// Stored canonically (01194 -> 1194), as Config.Validate wants it.
	canonical := net.JoinHostPort(host, strconv.Itoa(p))
	if _, _, err := vpn.SplitEndpoint(canonical); err != nil {
		return "", fmt.Errorf("invalid %s %q: %w", flag, endpoint, err)
	}
	return canonical, nil
}

// CheckOverlap refuses an overlay that shares addresses with a cluster range.
func CheckOverlap(overlay *ipam.Pool, name, cidr string) error {
	if cidr == "" {
		return nil
	}
	for _, part := range strings.Split(cidr, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(part))
		if err != nil {
			return fmt.Errorf("invalid %s CIDR %q: %w", name, part, err)
		}
		if ipam.Overlaps(overlay.Prefix(), p) {
			return fmt.Errorf("overlay CIDR %s overlaps the cluster's %s CIDR %s: choose a --overlay-cidr outside it (for example 10.23.0.0/16)", overlay.Prefix(), name, p)
		}
	}
	return nil
}
