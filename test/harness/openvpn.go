package harness

import (
	"testing"
)

// StartOpenVPNHub runs a VPN hub's openvpn in network namespace ns from
// the configuration directory `kubectl stage hub-config --dir` wrote
// (server.conf: its own tun device, client-to-client, so it relays between
// the nodes itself), logging to logPath. The daemon stops when t ends;
// Stop ends it earlier. OpenVPN rereads the CRL and client-config-dir on
// every handshake, so a rewritten directory needs no reload.
func StartOpenVPNHub(t testing.TB, ns, dir, logPath string) *Daemon {
	t.Helper()
	hub, err := StartDaemon("openvpn-hub", "ip", []string{"netns", "exec", ns, "openvpn", "--cd", dir, "--config", "server.conf"}, logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Stop)
	return hub
}
