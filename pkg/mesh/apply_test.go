package mesh

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// A dump as wg(8) prints it; the interface line's private key is a
// placeholder that must never come out of ParseDump.
const dump = "PRIVATEKEYPLACEHOLDER=\t" + keyA + "\t51821\toff\n" +
	keyHub + "\t(none)\t198.18.0.1:51820\t10.23.0.0/16\t1764547200\t1024\t2048\t25\n" +
	keyB + "\t(none)\t198.18.200.2:51821\t10.23.0.3/32\t0\t0\t0\toff\n" +
	keyC + "\t(none)\t(none)\t(none)\t0\t0\t0\toff\n"

func TestParseDump(t *testing.T) {
	peers, err := ParseDump(dump)
	if err != nil {
		t.Fatal(err)
	}
	want := []LivePeer{
		{PublicKey: keyHub, Endpoint: "198.18.0.1:51820", AllowedIPs: []netip.Prefix{hub.Prefix}, LatestHandshake: time.Unix(1764547200, 0), RxBytes: 1024, TxBytes: 2048, PersistentKeepalive: 25},
		{PublicKey: keyB, Endpoint: "198.18.200.2:51821", AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.23.0.3/32")}},
		{PublicKey: keyC},
	}
	if !reflect.DeepEqual(peers, want) {
		t.Errorf("got %+v\nwant %+v", peers, want)
	}

	for name, bad := range map[string]string{
		"empty":             "",
		"short peer line":   "k\tk\t1\toff\n" + keyB + "\t(none)\n",
		"bad allowed ip":    "k\tk\t1\toff\n" + keyB + "\t(none)\t(none)\t10.23.0.300/32\t0\t0\t0\toff\n",
		"bad handshake":     "k\tk\t1\toff\n" + keyB + "\t(none)\t(none)\t(none)\tx\t0\t0\toff\n",
		"bad keepalive":     "k\tk\t1\toff\n" + keyB + "\t(none)\t(none)\t(none)\t0\t0\t0\tsoon\n",
		"no interface line": keyB + "\t(none)\t(none)\t(none)\t0\t0\t0\toff\n",
	} {
		if _, err := ParseDump(bad); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestDiff(t *testing.T) {
	live, err := ParseDump(dump)
	if err != nil {
		t.Fatal(err)
	}
	d := Node{Name: "d-1", OverlayIP: netip.MustParseAddr("10.23.0.5"), PublicKey: keyD}
	tests := []struct {
		name    string
		desired []Peer
		want    []string
	}{
		{
			name:    "the hub and b as desired: only the stale c is removed",
			desired: []Peer{hubPeer(), host(b, b.Endpoint)},
			want:    []string{"peer " + keyC + " remove"},
		},
		{
			name:    "b left: removed; the hub kept",
			desired: []Peer{hubPeer()},
			want:    []string{"peer " + keyB + " remove", "peer " + keyC + " remove"},
		},
		{
			name:    "d joined with a declared endpoint",
			desired: []Peer{hubPeer(), host(b, b.Endpoint), host(c, ""), host(d, "198.18.200.5:51821")},
			want: []string{
				"peer " + keyD + " endpoint 198.18.200.5:51821 allowed-ips 10.23.0.5/32 persistent-keepalive off",
				"peer " + keyC + " allowed-ips 10.23.0.4/32 persistent-keepalive off",
			},
		},
		{
			name:    "b's endpoint changed (NAT rebinding declared anew)",
			desired: []Peer{hubPeer(), host(b, "198.18.200.7:4000"), host(c, "")},
			want:    []string{"peer " + keyB + " endpoint 198.18.200.7:4000 allowed-ips 10.23.0.3/32 persistent-keepalive off", "peer " + keyC + " allowed-ips 10.23.0.4/32 persistent-keepalive off"},
		},
		{
			name:    "a DNS endpoint is not rewritten once WireGuard resolved it",
			desired: []Peer{hubPeer(), host(b, "b.example.org:51821"), host(c, "")},
			want:    []string{"peer " + keyC + " allowed-ips 10.23.0.4/32 persistent-keepalive off"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changes := Diff(tt.desired, live)
			got := strings.Join(SetArgs("stage0", changes), " ")
			want := strings.Join(append([]string{"set stage0"}, tt.want...), " ")
			// removals come first, then updates, each sorted by key
			if got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
	if changes := Diff([]Peer{hubPeer(), host(b, b.Endpoint), host(c, "")}, live[:2]); len(changes) != 1 || changes[0].Peer.Name != "c-1" {
		t.Errorf("adding c to a live set without it: %v", changes)
	}
	if changes := Diff([]Peer{hubPeer(), host(b, b.Endpoint)}, live[:2]); len(changes) != 0 {
		t.Errorf("a live set already as desired: %v, want no change", changes)
	}
}

func TestApplierApply(t *testing.T) {
	var ran [][]string
	a := &Applier{Device: "stage0", Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
		ran = append(ran, append([]string{name}, args...))
		if args[0] == "show" {
			return []byte(dump), nil
		}
		return nil, nil
	}}
	changes, live, err := a.Apply(context.Background(), []Peer{hubPeer(), host(b, b.Endpoint)})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"wg", "show", "stage0", "dump"}, {"wg", "set", "stage0", "peer", keyC, "remove"}}
	if !reflect.DeepEqual(ran, want) || len(changes) != 1 {
		t.Errorf("ran %q (changes %v), want %q", ran, changes, want)
	}
	// The one dump it read is returned, so that a caller need not read again.
	if parsed, err := ParseDump(dump); err != nil || !reflect.DeepEqual(live, parsed) {
		t.Errorf("Apply returned the live peers %+v, want the dump it read %+v (%v)", live, parsed, err)
	}
	for _, args := range ran {
		if strings.Contains(strings.Join(args, " "), "PRIVATEKEYPLACEHOLDER") {
			t.Errorf("the private key reached a command line: %q", args)
		}
	}

	failing := &Applier{Device: "stage0", Run: func(context.Context, string, ...string) ([]byte, error) {
		return nil, errors.New("Unable to access interface: No such device")
	}}
	if _, _, err := failing.Apply(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "No such device") {
		t.Errorf("a missing interface: %v", err)
	}
}
