package enroll

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kubectl-stage/kubectl-stage/pkg/secretfile"
	"github.com/kubectl-stage/kubectl-stage/pkg/site"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

// HubFiles renders the hub's configuration from the cluster's state: the
// VPN credentials, and one entry per enrolled node (OpenVPN client-config-dir
// file or WireGuard peer). Revoked nodes are absent from it.
func (e *Enroller) HubFiles(ctx context.Context) (map[string][]byte, error) {
	files, _, err := e.hubFiles(ctx)
	return files, err
}

func (e *Enroller) hubFiles(ctx context.Context) (map[string][]byte, []vpn.Peer, error) {
	cfg, err := e.Store.Config(ctx)
	if err != nil {
		return nil, nil, err
	}
	network, err := cfg.Network()
	if err != nil {
		return nil, nil, err
	}
	hub, err := e.Store.Hub(ctx)
	if err != nil {
		return nil, nil, err
	}
	records, err := e.Store.Nodes(ctx)
	if err != nil {
		return nil, nil, err
	}
	peers := make([]vpn.Peer, 0, len(records))
	for _, r := range records {
		peers = append(peers, vpn.Peer{Name: r.Name, Site: r.Site, IP: r.OverlayIP, WireGuardPublicKey: r.WireGuardPublicKey})
	}
	if cfg.VPN == vpn.WireGuard {
		files, err := vpn.WireGuardHub{Network: network, PrivateKey: string(hub[site.WGPrivateKey]), Peers: peers}.Files()
		return files, peers, err
	}
	ca, err := e.Store.VPNCA(ctx)
	if err != nil {
		return nil, nil, err
	}
	files, err := vpn.OpenVPNHub{
		Network: network, CA: ca.CertificatePEM(), Cert: hub[site.HubCertKey], Key: hub[site.HubKeyKey],
		TLSCrypt: hub[site.TLSCryptKey], CRL: hub[site.CRLKey], Peers: peers,
	}.Files()
	return files, peers, err
}

// WriteHubConfig writes the hub's configuration into dir (files 0600), and
// removes client-config-dir entries of nodes that have left, so that the
// hub refuses them even before it rereads the CRL.
func (e *Enroller) WriteHubConfig(ctx context.Context, dir string) ([]string, error) {
	res, err := e.writeHubConfig(ctx, dir)
	if err != nil {
		return nil, err
	}
	return res.Files, nil
}

// HubResult is what UpdateHub did, and what is left for the operator.
type HubResult struct {
	// Files are the files written, relative to the hub's directory.
	Files []string
	// Departed are the nodes whose client-config-dir entry was removed.
	Departed []string
	// Cut are the nodes whose live session (OpenVPN) or peer on the live
	// interface (WireGuard) this run ended.
	Cut []string
	// Applied says that the running hub has the new configuration.
	Applied bool
	// Pending are the exact commands to run on the hub when this run could
	// not reach the running hub: until they run, the live sessions of nodes
	// that left go on.
	Pending []string
}

// UpdateHub writes the hub's configuration into dir, then applies it to the
// running hub when it can reach it, so that a node that left loses its live
// session at once: OpenVPN checks the CRL and the client-config-dir only at
// a handshake, so the sessions of nodes that are no longer enrolled are
// killed through the hub's management socket (dir/management.sock);
// WireGuard's interface iface gets the new peer list with `wg syncconf`.
// When the hub cannot be reached from here, Pending has the commands to run
// on it.
func (e *Enroller) UpdateHub(ctx context.Context, dir, iface string) (*HubResult, error) {
	res, err := e.writeHubConfig(ctx, dir)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if res.wireguard {
		return res.HubResult, e.applyWireGuard(ctx, abs, iface, res.HubResult)
	}
	return res.HubResult, e.applyOpenVPN(ctx, abs, res.enrolled, res.HubResult)
}

func (e *Enroller) applyOpenVPN(ctx context.Context, dir string, enrolled map[string]bool, res *HubResult) error {
	sock := filepath.Join(dir, vpn.ManagementSocket)
	m, err := vpn.DialManagement(ctx, sock)
	if err != nil {
		// Not on the hub, or a hub started from a server.conf without the
		// management socket: the operator has to end the sessions.
		for _, name := range res.Departed {
			res.Pending = append(res.Pending, vpn.KillCommand(dir, name))
		}
		if len(res.Pending) > 0 {
			e.step("the hub's management socket %s is not reachable from here (%v): the nodes that left keep their live sessions until the commands below run on the hub (or its openvpn restarts)", sock, err)
		}
		return nil
	}
	defer func() { _ = m.Close() }()
	clients, err := m.Clients()
	if err != nil {
		return fmt.Errorf("listing the hub's sessions through %s: %w", sock, err)
	}
	cut := map[string]bool{}
	for _, c := range clients {
		if enrolled[c.CommonName] || c.CommonName == vpn.UnauthenticatedName {
			continue
		}
		if err := m.Kill(c); errors.Is(err, vpn.ErrNoSession) {
			continue
		} else if err != nil {
			return fmt.Errorf("ending the live session of %s, which is no longer enrolled, through %s: %w; run on the hub: %s", c.CommonName, sock, err, vpn.KillCommand(dir, c.CommonName))
		}
		if !cut[c.CommonName] {
			cut[c.CommonName] = true
			res.Cut = append(res.Cut, c.CommonName)
			e.step("ended the live VPN session of %s, which is no longer enrolled", c.CommonName)
		}
	}
	res.Applied = true
	return nil
}

func (e *Enroller) applyWireGuard(ctx context.Context, dir, iface string, res *HubResult) error {
	conf := filepath.Join(dir, "hub.conf")
	syncconf := "wg syncconf " + vpn.ShellWord(iface) + " " + vpn.ShellWord(conf)
	if strings.ContainsAny(iface, " \t\n'\"$`;&|<>()\\") || iface == "" {
		return fmt.Errorf("invalid interface name %q", iface)
	}
	before, err := exec.CommandContext(ctx, "wg", "show", iface, "peers").Output()
	if err != nil {
		// Not on the hub (or not root there): the operator applies it.
		res.Pending = append(res.Pending, syncconf)
		e.step("the WireGuard interface %s is not reachable from here: run on the hub `%s` (it drops the peers of nodes that left from the live interface at once)", iface, syncconf)
		return nil
	}
	if out, err := exec.CommandContext(ctx, "wg", "syncconf", iface, conf).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s; run it on the hub", syncconf, err, strings.TrimSpace(string(out)))
	}
	after, err := exec.CommandContext(ctx, "wg", "show", iface, "peers").Output()
	if err != nil {
		return fmt.Errorf("wg show %s peers: %w", iface, err)
	}
	kept := map[string]bool{}
	for _, k := range strings.Fields(string(after)) {
		kept[k] = true
	}
	for _, k := range strings.Fields(string(before)) {
		if !kept[k] {
			res.Cut = append(res.Cut, k)
		}
	}
	res.Applied = true
	e.step("applied the peer list to the live interface %s (%s): %d peer(s) removed", iface, syncconf, len(res.Cut))
	return nil
}

type hubWrite struct {
	*HubResult
	wireguard bool
	enrolled  map[string]bool
}

func (e *Enroller) writeHubConfig(ctx context.Context, dir string) (*hubWrite, error) {
	files, peers, err := e.hubFiles(ctx)
	if err != nil {
		return nil, err
	}
	res := &hubWrite{HubResult: &HubResult{}, enrolled: map[string]bool{}}
	for _, p := range peers {
		res.enrolled[p.Name] = true
	}
	// Only OpenVPN has a client-config-dir.
	_, openvpn := files["server.conf"]
	res.wireguard = !openvpn
	hubDirs := []string{dir}
	if openvpn {
		hubDirs = append(hubDirs, filepath.Join(dir, "ccd"))
	}
	for _, d := range hubDirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
		// The management socket lives in dir: only its owner may reach it.
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, err
		}
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if !filepath.IsLocal(filepath.FromSlash(name)) {
			return nil, fmt.Errorf("refusing to write %q outside %s", name, dir)
		}
		if err := secretfile.Write(path, files[name]); err != nil {
			return nil, err
		}
		res.Files = append(res.Files, name)
	}
	if openvpn {
		if res.Departed, err = removeStaleCCD(filepath.Join(dir, "ccd"), files); err != nil {
			return nil, err
		}
	}
	e.step("wrote the hub configuration (%d files) to %s", len(res.Files), dir)
	return res, nil
}

// removeStaleCCD deletes the client-config-dir entries of nodes no longer
// enrolled: with ccd-exclusive, the hub then refuses them outright. It
// returns their names.
func removeStaleCCD(ccd string, files map[string][]byte) ([]string, error) {
	entries, err := os.ReadDir(ccd)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, entry := range entries {
		if _, current := files["ccd/"+entry.Name()]; !current && !strings.HasPrefix(entry.Name(), ".") {
			if err := os.Remove(filepath.Join(ccd, entry.Name())); err != nil {
				return nil, err
			}
			removed = append(removed, entry.Name())
		}
	}
	return removed, nil
}
