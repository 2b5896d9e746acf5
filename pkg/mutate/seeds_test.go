package mutate

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
)

// peersOver are n host-network peers at the sites, taken in turn.
func peersOver(n int, sites ...string) []Peer {
	peers := make([]Peer, n)
	for i := range peers {
		peers[i] = Peer{Name: fmt.Sprintf("gossip-%d", i), Site: sites[i%len(sites)], HostIP: fmt.Sprintf("10.23.%d.%d", i/250, i%250+1), Ready: true, HostNetwork: true}
	}
	return peers
}

// Seeds spread over the peers: with 1,000 pods over 100 peers no peer is
// anyone's seed more than 3 times as often as the average, and each pod's
// seeds are at as many sites as they can be.
func TestSeedsSpreadOverPeers(t *testing.T) {
	tests := []struct {
		name  string
		sites []string
		seeds int
	}{
		{"one site", []string{"tokyo"}, 3},
		{"three sites", []string{"frankfurt", "osaka", "tokyo"}, 3},
		{"ten sites", []string{"s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"}, 3},
		{"four sites, more seeds than sites", []string{"frankfurt", "osaka", "tokyo", "virginia"}, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peers := peersOver(100, tt.sites...)
			siteOf := map[string]string{}
			for _, p := range peers {
				siteOf[p.HostIP] = p.Site
			}
			v := StaticView{SiteNames: tt.sites, PeersByApp: map[string][]Peer{"p2p/gossip": peers}}
			chosen := map[string]int{}
			for i := range 1000 {
				name := fmt.Sprintf("gossip-new-%d", i)
				got, _, err := Mutate(pod(annotate(api.AnnotationSeeds, fmt.Sprint(tt.seeds)), func(p *corev1.Pod) { p.Name = name }), nil, v, "")
				if err != nil {
					t.Fatal(err)
				}
				seeds, _ := env(got, api.EnvPeerSeeds)
				list := seedList(seeds.Value)
				if len(list) != tt.seeds {
					t.Fatalf("%s: %d seeds, want %d", name, len(list), tt.seeds)
				}
				var sites []string
				for _, s := range list {
					chosen[s]++
					sites = append(sites, siteOf[s])
				}
				slices.Sort(sites)
				if distinct := len(slices.Compact(sites)); distinct != min(tt.seeds, len(tt.sites)) {
					t.Errorf("%s: seeds at %d sites (%v), want %d", name, distinct, sites, min(tt.seeds, len(tt.sites)))
				}
			}
			average := float64(1000*tt.seeds) / 100
			most := 0
			for _, n := range chosen {
				most = max(most, n)
			}
			t.Logf("%d peers chosen, the most %d times (%.1f times the average)", len(chosen), most, float64(most)/average)
			for addr, n := range chosen {
				if float64(n) > 3*average {
					t.Errorf("%s chosen %d times, more than 3 times the average %.0f", addr, n, average)
				}
			}
		})
	}
}

// The same pod in the same cluster gets the same seeds; another pod,
// others. An unnamed pod (generateName) is told apart by its seed key.
func TestSeedsArePerPod(t *testing.T) {
	v := StaticView{SiteNames: []string{"osaka", "tokyo"}, PeersByApp: map[string][]Peer{"p2p/gossip": peersOver(100, "osaka", "tokyo")}}
	seedsOf := func(name, key string) string {
		t.Helper()
		got, _, err := Mutate(pod(func(p *corev1.Pod) { p.Name = name }), nil, v, key)
		if err != nil {
			t.Fatal(err)
		}
		seeds, _ := env(got, api.EnvPeerSeeds)
		return seeds.Value
	}
	if a, again := seedsOf("gossip-a", ""), seedsOf("gossip-a", ""); a != again {
		t.Errorf("the same pod got %q, then %q", a, again)
	}
	if a, b := seedsOf("gossip-a", ""), seedsOf("gossip-b", ""); a == b {
		t.Errorf("two pods got the same seeds %q", a)
	}
	if a, b := seedsOf("", "uid-1"), seedsOf("", "uid-2"); a == b {
		t.Errorf("two unnamed pods with their own keys got the same seeds %q", a)
	}
}

// A seed is never the pod itself, even where the hash starts at it.
func TestSeedsNeverThePodItself(t *testing.T) {
	peers := peersOver(4, "tokyo")
	v := StaticView{SiteNames: []string{"tokyo"}, PeersByApp: map[string][]Peer{"p2p/gossip": peers}}
	for _, self := range peers {
		got, _, err := Mutate(pod(annotate(api.AnnotationSeeds, "10"), func(p *corev1.Pod) { p.Name = self.Name }), nil, v, "")
		if err != nil {
			t.Fatal(err)
		}
		seeds, _ := env(got, api.EnvPeerSeeds)
		if list := seedList(seeds.Value); len(list) != 3 || slices.Contains(list, self.HostIP) {
			t.Errorf("%s: seeds %v, want the 3 others", self.Name, list)
		}
	}
}

// When the peers cannot be read the pod is mutated without seeds, the
// decision carries the error and the pod an annotation saying why; a
// second pass keeps both as they are.
func TestPeersUnreadable(t *testing.T) {
	broken := StaticView{SiteNames: view.SiteNames, Err: errors.New("the peer index is not synced yet")}
	tests := []struct {
		name     string
		view     View
		pod      *corev1.Pod
		wantErr  string
		wantNote string
	}{
		{"unreadable", broken, pod(), `cannot read the peers of app "gossip" in namespace "p2p": the peer index is not synced yet`,
			`false: cannot read the peers of app "gossip" in namespace "p2p": the peer index is not synced yet`},
		{"readable", view, pod(), "", ""},
		{"a note already written stays", broken, pod(annotate(AnnotationSeedsInjected, "false: earlier")), `cannot read the peers`, "false: earlier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, d, err := Mutate(tt.pod, nil, tt.view, "")
			if err != nil || !d.Mutated {
				t.Fatalf("mutated %t, err %v: want the pod mutated", d.Mutated, err)
			}
			if (d.SeedsErr == nil) != (tt.wantErr == "") || (d.SeedsErr != nil && !strings.HasPrefix(d.SeedsErr.Error(), tt.wantErr)) {
				t.Errorf("SeedsErr = %v, want %q", d.SeedsErr, tt.wantErr)
			}
			if note := got.Annotations[AnnotationSeedsInjected]; note != tt.wantNote {
				t.Errorf("%s = %q, want %q", AnnotationSeedsInjected, note, tt.wantNote)
			}
			if seeds, ok := env(got, api.EnvPeerSeeds); !ok || (tt.wantErr != "" && seeds.Value != "") {
				t.Errorf("%s = %+v, want it set (empty without peers)", api.EnvPeerSeeds, seeds)
			}
			again, _, err := Mutate(got, nil, tt.view, "")
			if err != nil || again.Annotations[AnnotationSeedsInjected] != got.Annotations[AnnotationSeedsInjected] {
				t.Errorf("a second pass changed the note to %q (err %v)", again.Annotations[AnnotationSeedsInjected], err)
			}
		})
	}
}
