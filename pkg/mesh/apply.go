package mesh

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// LivePeer is a peer as `wg show DEV dump` reports it.
type LivePeer struct {
	PublicKey  string
	Endpoint   string // "" when WireGuard has none yet
	AllowedIPs []netip.Prefix
	// LatestHandshake is zero before the first handshake.
	LatestHandshake     time.Time
	RxBytes, TxBytes    int64
	PersistentKeepalive int
}

// ParseDump reads `wg show DEV dump`. Its first line is the interface's,
// which holds the private key: it is skipped and never kept.
func ParseDump(dump string) ([]LivePeer, error) {
	lines := strings.Split(strings.TrimRight(dump, "\n"), "\n")
	if len(lines) == 0 || len(strings.Split(lines[0], "\t")) != 4 {
		return nil, fmt.Errorf("wg show dump: the first line is not an interface line (4 fields)")
	}
	var peers []LivePeer
	for i, line := range lines[1:] {
		f := strings.Split(line, "\t")
		if len(f) != 8 {
			return nil, fmt.Errorf("wg show dump: peer line %d has %d fields, want 8", i+1, len(f))
		}
		p := LivePeer{PublicKey: f[0]}
		if f[2] != "(none)" {
			p.Endpoint = f[2]
		}
		if f[3] != "(none)" {
			for _, s := range strings.Split(f[3], ",") {
				prefix, err := netip.ParsePrefix(s)
				if err != nil {
					return nil, fmt.Errorf("wg show dump: peer line %d: allowed IP %q: %w", i+1, s, err)
				}
				p.AllowedIPs = append(p.AllowedIPs, prefix)
			}
		}
		numbers := make([]int64, 3)
		for j, s := range f[4:7] {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("wg show dump: peer line %d: field %d %q is not a number", i+1, j+5, s)
			}
			numbers[j] = n
		}
		if numbers[0] > 0 {
			p.LatestHandshake = time.Unix(numbers[0], 0)
		}
		p.RxBytes, p.TxBytes = numbers[1], numbers[2]
		if f[7] != "off" {
			n, err := strconv.Atoi(f[7])
			if err != nil {
				return nil, fmt.Errorf("wg show dump: peer line %d: persistent keepalive %q", i+1, f[7])
			}
			p.PersistentKeepalive = n
		}
		peers = append(peers, p)
	}
	return peers, nil
}

// Change is one peer to add, update or remove.
type Change struct {
	Remove bool
	// Peer is the desired peer (for a removal, only its key and name).
	Peer Peer
	// SetEndpoint says whether the endpoint is written: an endpoint left
	// empty, or already what WireGuard uses, is not, so that a roaming
	// peer keeps the address its packets come from.
	SetEndpoint bool
}

func (c Change) String() string {
	who := c.Peer.Name
	if who == "" {
		who = "unknown key"
	}
	if c.Remove {
		return "remove peer " + who + " (" + c.Peer.PublicKey + ")"
	}
	return fmt.Sprintf("set peer %s (%s) allowed-ips %s", who, c.Peer.PublicKey, formatPrefixes(c.Peer.AllowedIPs))
}

// Diff is what turns the live peers into the desired ones, removals first,
// each in key order. Peers already as desired are left alone, so that their
// sessions go on.
func Diff(desired []Peer, live []LivePeer) []Change {
	current := map[string]LivePeer{}
	for _, p := range live {
		current[p.PublicKey] = p
	}
	wanted := map[string]bool{}
	var removals, updates []Change
	for _, d := range desired {
		wanted[d.PublicKey] = true
		l, exists := current[d.PublicKey]
		setEndpoint := d.Endpoint != "" && !sameEndpoint(d.Endpoint, l.Endpoint)
		if exists && !setEndpoint && samePrefixes(d.AllowedIPs, l.AllowedIPs) && d.PersistentKeepalive == l.PersistentKeepalive {
			continue
		}
		updates = append(updates, Change{Peer: d, SetEndpoint: setEndpoint})
	}
	for _, l := range live {
		if !wanted[l.PublicKey] {
			removals = append(removals, Change{Remove: true, Peer: Peer{PublicKey: l.PublicKey}})
		}
	}
	byKey := func(a, b Change) int { return strings.Compare(a.Peer.PublicKey, b.Peer.PublicKey) }
	slices.SortFunc(removals, byKey)
	slices.SortFunc(updates, byKey)
	return append(removals, updates...)
}

// sameEndpoint: a declared endpoint with a DNS name is what WireGuard
// resolved it to once set, so only an IP endpoint is compared.
func sameEndpoint(declared, live string) bool {
	if live == "" {
		return false
	}
	if _, err := netip.ParseAddrPort(declared); err != nil {
		return true
	}
	return declared == live
}

func samePrefixes(a, b []netip.Prefix) bool {
	key := func(p []netip.Prefix) []string {
		s := make([]string, len(p))
		for i, x := range p {
			s[i] = x.Masked().String()
		}
		slices.Sort(s)
		return s
	}
	return slices.Equal(key(a), key(b))
}

func formatPrefixes(p []netip.Prefix) string {
	s := make([]string, len(p))
	for i, x := range p {
		s[i] = x.String()
	}
	return strings.Join(s, ",")
}

// SetArgs is one `wg set DEV ...` command line doing every change, so the
// interface goes from one peer set to the next in one step.
func SetArgs(device string, changes []Change) []string {
	args := []string{"set", device}
	for _, c := range changes {
		args = append(args, "peer", c.Peer.PublicKey)
		if c.Remove {
			args = append(args, "remove")
			continue
		}
		if c.SetEndpoint {
			args = append(args, "endpoint", c.Peer.Endpoint)
		}
		args = append(args, "allowed-ips", formatPrefixes(c.Peer.AllowedIPs), "persistent-keepalive", keepalive(c.Peer.PersistentKeepalive))
	}
	return args
}

func keepalive(seconds int) string {
	if seconds == 0 {
		return "off"
	}
	return strconv.Itoa(seconds)
}

// Applier makes a live WireGuard interface carry a peer set, through wg(8):
// the kernel module and wireguard-go answer it alike.
type Applier struct {
	Device string
	// Run runs a command and returns its standard output; nil runs it here.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
}

// Live is the interface's peers now.
func (a *Applier) Live(ctx context.Context) ([]LivePeer, error) {
	out, err := a.run(ctx, "wg", "show", a.Device, "dump")
	if err != nil {
		return nil, err
	}
	return ParseDump(string(out))
}

// Apply changes the interface to the desired peers and returns what it
// changed, and the live peers it read before changing them (one dump per
// call, for a caller that also wants to see the interface); when the
// interface is already as desired it runs nothing else.
func (a *Applier) Apply(ctx context.Context, desired []Peer) (changes []Change, live []LivePeer, err error) {
	live, err = a.Live(ctx)
	if err != nil {
		return nil, nil, err
	}
	changes = Diff(desired, live)
	if len(changes) == 0 {
		return nil, live, nil
	}
	if _, err := a.run(ctx, "wg", SetArgs(a.Device, changes)...); err != nil {
		return nil, nil, err
	}
	return changes, live, nil
}

func (a *Applier) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	if a.Run != nil {
		return a.Run(ctx, name, args...)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		// Neither the arguments nor the output hold a private key: wg set is
		// never given one here, and a dump is not repeated.
		return nil, fmt.Errorf("%s %s: %v: %s", name, args[0]+" "+a.Device, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
