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
	"net/netip"
	"text/template"
	"time"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

//go:embed join.sh.tmpl
var scriptTemplate string

var script = template.Must(template.New("join").Funcs(template.FuncMap{
	"b64": func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
}).Parse(scriptTemplate))

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
func (b Bundle) JoinConfiguration() string {
	return fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: %q
    token: %q
    caCertHashes:
    - %q
nodeRegistration:
  name: %q
  kubeletExtraArgs:
  - name: node-ip
    value: %q
  - name: node-labels
    value: %q
timeouts:
  discovery: 2m0s
`, b.APIServerEndpoint, b.Token, b.CACertHash, b.Node, b.OverlayIP.String(), b.NodeLabels())
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
