package enroll

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/kubectl-stage/kubectl-stage/pkg/secretfile"
	"github.com/kubectl-stage/kubectl-stage/pkg/site"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

// HubFiles renders the hub's configuration from the cluster's state: the
// VPN credentials, and one entry per enrolled node (OpenVPN client-config-dir
// file or WireGuard peer). Revoked nodes are absent from it.
func (e *Enroller) HubFiles(ctx context.Context) (map[string][]byte, error) {
	cfg, err := e.Store.Config(ctx)
	if err != nil {
		return nil, err
	}
	network, err := cfg.Network()
	if err != nil {
		return nil, err
	}
	hub, err := e.Store.Hub(ctx)
	if err != nil {
		return nil, err
	}
	records, err := e.Store.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	peers := make([]vpn.Peer, 0, len(records))
	for _, r := range records {
		peers = append(peers, vpn.Peer{Name: r.Name, Site: r.Site, IP: r.OverlayIP, WireGuardPublicKey: r.WireGuardPublicKey})
	}
	if cfg.VPN == vpn.WireGuard {
		return vpn.WireGuardHub{Network: network, PrivateKey: string(hub[site.WGPrivateKey]), Peers: peers}.Files()
	}
	ca, err := e.Store.VPNCA(ctx)
	if err != nil {
		return nil, err
	}
	return vpn.OpenVPNHub{
		Network: network, CA: ca.CertificatePEM(), Cert: hub[site.HubCertKey], Key: hub[site.HubKeyKey],
		TLSCrypt: hub[site.TLSCryptKey], CRL: hub[site.CRLKey], Peers: peers,
	}.Files()
}

// WriteHubConfig writes the hub's configuration into dir (files 0600), and
// removes client-config-dir entries of nodes that have left, so that the
// hub refuses them even before it rereads the CRL.
func (e *Enroller) WriteHubConfig(ctx context.Context, dir string) ([]string, error) {
	files, err := e.HubFiles(ctx)
	if err != nil {
		return nil, err
	}
	// Only OpenVPN has a client-config-dir.
	_, openvpn := files["server.conf"]
	hubDirs := []string{dir}
	if openvpn {
		hubDirs = append(hubDirs, filepath.Join(dir, "ccd"))
	}
	for _, d := range hubDirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	var written []string
	for name, data := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := secretfile.Write(path, data); err != nil {
			return nil, err
		}
		written = append(written, name)
	}
	if openvpn {
		if err := removeStaleCCD(filepath.Join(dir, "ccd"), files); err != nil {
			return nil, err
		}
	}
	e.step("wrote the hub configuration (%d files) to %s", len(written), dir)
	return written, nil
}

// removeStaleCCD deletes the client-config-dir entries of nodes no longer
// enrolled: with ccd-exclusive, the hub then refuses them outright.
func removeStaleCCD(ccd string, files map[string][]byte) error {
	entries, err := os.ReadDir(ccd)
	if err != nil {
		return err
	}
	for _, entry := range entries {
		if _, current := files["ccd/"+entry.Name()]; !current && !strings.HasPrefix(entry.Name(), ".") {
			if err := os.Remove(filepath.Join(ccd, entry.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
