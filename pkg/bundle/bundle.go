// Package bundle renders the join bundle: one self-contained shell script
// that a person at a site runs as root to bring the VPN up, check every path
// (hub endpoint, tunnel, hub overlay address, API server over the overlay)
// and `kubeadm join` the cluster over the overlay, with the kubelet's node IP
// set to the overlay address and the site label set.
package bundle

import (
	"bytes"
	_ "embed"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"text/template"
	"time"
	"unicode"

	"sigs.k8s.io/yaml"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

//go:embed join.sh.tmpl
var scriptTemplate string

var script = template.Must(template.New("join").Funcs(template.FuncMap{
	"b64":     func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
	"sh":      func(v any) string { return shellQuote(fmt.Sprint(v)) },
	"comment": comment,
}).Parse(scriptTemplate))

// shellQuote makes s one bash word that is never interpreted: single quotes,
// each ' inside written as '\”. Every value the template puts in code goes
// through it.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// comment makes s safe inside a # comment line: it cannot end the line.
func comment(v any) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, fmt.Sprint(v))
}

// Bundle is everything a node needs to join.
type Bundle struct {
	Node      string
	Site      string
	OverlayIP netip.Addr
	Network   vpn.Network
	VPN       vpn.Backend
	// VPNConfig is the client configuration (OpenVPN config or `wg setconf` file).
	VPNConfig string
	// APIServerEndpoint is host:port of the API server over the overlay.
	APIServerEndpoint string
	Token             string
	TokenID           string
	TokenExpires      time.Time
	// CACertHash pins the cluster CA for kubeadm's token discovery.
	CACertHash  string
	GeneratedAt time.Time
}

// OverlayPrefixLen is the overlay's prefix length.
func (b Bundle) OverlayPrefixLen() int { return b.Network.Prefix.Bits() }

// JoinConfiguration is the kubeadm configuration `kubeadm join --config` reads.
// It is marshalled, so that no value can add a key or a list item.
func (b Bundle) JoinConfiguration() string {
	type arg struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	jc := map[string]any{
		"apiVersion": "kubeadm.k8s.io/v1beta4",
		"kind":       "JoinConfiguration",
		"discovery": map[string]any{"bootstrapToken": map[string]any{
			"apiServerEndpoint": b.APIServerEndpoint,
			"token":             b.Token,
			"caCertHashes":      []string{b.CACertHash},
		}},
		"nodeRegistration": map[string]any{
			"name":             b.Node,
			"kubeletExtraArgs": []arg{{Name: "node-ip", Value: b.OverlayIP.String()}, {Name: "node-labels", Value: b.NodeLabels()}},
		},
		"timeouts": map[string]any{"discovery": "2m0s"},
	}
	out, err := yaml.Marshal(jc)
	if err != nil { // only strings, lists and maps: cannot happen
		panic(fmt.Sprintf("marshalling the JoinConfiguration: %v", err))
	}
	return string(out)
}

// APIServerHost and APIServerPort split APIServerEndpoint for the bundle's
// reachability check (an IPv6 address without its brackets).
func (b Bundle) APIServerHost() string {
	host, _, err := net.SplitHostPort(b.APIServerEndpoint)
	if err != nil {
		return b.APIServerEndpoint
	}
	return host
}

// APIServerPort: see APIServerHost.
func (b Bundle) APIServerPort() string {
	_, port, err := net.SplitHostPort(b.APIServerEndpoint)
	if err != nil {
		return ""
	}
	return port
}

// NodeLabels are the kubelet's --node-labels: the site, and the same value as
// topology zone, which the API server copies onto pods at binding so that
// they can read their site through the downward API.
func (b Bundle) NodeLabels() string {
	return api.LabelSite + "=" + b.Site + "," + api.LabelZone + "=" + b.Site
}

// Render returns the script.
func (b Bundle) Render() ([]byte, error) {
	var buf bytes.Buffer
	if err := script.Execute(&buf, b); err != nil {
		return nil, fmt.Errorf("rendering the join bundle: %w", err)
	}
	return buf.Bytes(), nil
}

// Interface is the tunnel device name.
func (b Bundle) Interface() string { return vpn.InterfaceName }
