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
				got, _, err := Mutate(pod(annotate(api.AnnotationSeeds, fmt.Sprint(tt.seeds)), func(p *corev1.Pod) { p.Name = name }), nil, v, Options{})
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
		got, _, err := Mutate(pod(func(p *corev1.Pod) { p.Name = name }), nil, v, Options{SeedKey: key})
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
		got, _, err := Mutate(pod(annotate(api.AnnotationSeeds, "10"), func(p *corev1.Pod) { p.Name = self.Name }), nil, v, Options{})
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
			got, d, err := Mutate(tt.pod, nil, tt.view, Options{})
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
			again, _, err := Mutate(got, nil, tt.view, Options{})
			if err != nil || again.Annotations[AnnotationSeedsInjected] != got.Annotations[AnnotationSeedsInjected] {
				t.Errorf("a second pass changed the note to %q (err %v)", again.Annotations[AnnotationSeedsInjected], err)
			}
		})
	}
}

// STAGE_SEED_URL is injected, after the variables it refers to, only when
// the webhook serves a seed endpoint, and a second pass leaves it alone.
func TestSeedURL(t *testing.T) {
	tests := []struct {
		name string
		base string
		pod  *corev1.Pod
		want string // "" for not injected
	}{
		{"no endpoint", "", pod(annotate(api.AnnotationPort, "7946")), ""},
		{"with the pod's port", "http://stage-seeds.kubectl-stage-system.svc:8082", pod(annotate(api.AnnotationPort, "7946")),
			"http://stage-seeds.kubectl-stage-system.svc:8082/seeds/p2p/gossip?site=$(STAGE_SITE)&port=7946&key=$(STAGE_POD_NAME)"},
		{"bare IPs", "http://10.23.0.1:8082", pod(),
			"http://10.23.0.1:8082/seeds/p2p/gossip?site=$(STAGE_SITE)&key=$(STAGE_POD_NAME)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := Mutate(tt.pod, nil, view, Options{SeedURL: tt.base})
			if err != nil {
				t.Fatal(err)
			}
			v, ok := env(got, api.EnvSeedURL)
			if ok != (tt.want != "") || v.Value != tt.want {
				t.Fatalf("%s = %q (set %t), want %q", api.EnvSeedURL, v.Value, ok, tt.want)
			}
			if !ok {
				return
			}
			// The kubelet expands $(VAR) only from variables defined before.
			names := []string{}
			for _, e := range got.Spec.Containers[0].Env {
				names = append(names, e.Name)
			}
			if i := slices.Index(names, api.EnvSeedURL); i < slices.Index(names, api.EnvSite) || i < slices.Index(names, api.EnvPodName) {
				t.Errorf("%s comes before the variables it refers to: %v", api.EnvSeedURL, names)
			}
			again, _, err := Mutate(got, nil, view, Options{SeedURL: "http://elsewhere:1"})
			if err != nil {
				t.Fatal(err)
			}
			if v, _ := env(again, api.EnvSeedURL); v.Value != tt.want {
				t.Errorf("re-mutation changed %s to %q", api.EnvSeedURL, v.Value)
			}
		})
	}
}

// The seed list of an asker: other sites first, spread over them, its own
// site last, a peer never listed twice, at most N.
func TestSeedsFor(t *testing.T) {
	x := NewIndex()
	for node, site := range map[string]string{"tokyo-1": "tokyo", "tokyo-2": "tokyo", "osaka-1": "osaka", "frankfurt-1": "frankfurt"} {
		x.SetNode(node, site)
	}
	for i, p := range []Peer{
		{Name: "g-0", Node: "tokyo-1", HostIP: "10.23.0.2"},
		{Name: "g-1", Node: "tokyo-2", HostIP: "10.23.0.3"},
		{Name: "g-2", Node: "osaka-1", HostIP: "10.23.0.4"},
		{Name: "g-3", Node: "frankfurt-1", HostIP: "10.23.0.5"},
	} {
		p.Ready, p.HostNetwork, p.Port = true, true, 7946
		if i == 3 {
			p.Port = 7000 // a straggler still on an old port
		}
		x.SetPod("p2p", "gossip", p)
	}
	tests := []struct {
		name string
		q    SeedQuery
		want []string // "site:address"
	}{
		// The orders follow FNV-1a of the key: fixed, and different per key.
		{"from tokyo, all", SeedQuery{Site: "tokyo", Port: 7946, N: 10},
			[]string{"frankfurt:10.23.0.5:7946", "osaka:10.23.0.4:7946", "tokyo:10.23.0.3:7946", "tokyo:10.23.0.2:7946"}},
		{"from tokyo, two: other sites only", SeedQuery{Site: "tokyo", Port: 7946, N: 2},
			[]string{"frankfurt:10.23.0.5:7946", "osaka:10.23.0.4:7946"}},
		{"not the asker itself", SeedQuery{Site: "tokyo", Self: "g-1", Port: 7946, N: 10},
			[]string{"frankfurt:10.23.0.5:7946", "osaka:10.23.0.4:7946", "tokyo:10.23.0.2:7946"}},
		{"another key, from osaka: its own site after every other", SeedQuery{Key: "g-9", Site: "osaka", N: 10},
			[]string{"tokyo:10.23.0.2", "frankfurt:10.23.0.5", "tokyo:10.23.0.3", "osaka:10.23.0.4"}},
		{"none asked", SeedQuery{Site: "tokyo", N: 0}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			_ = x.Peers("p2p", "gossip", func(r *ReadyPeers) {
				for _, s := range SeedsFor(r, tt.q) {
					got = append(got, s.Site+":"+s.Address)
				}
			})
			if !slices.Equal(got, tt.want) {
				t.Errorf("seeds = %v, want %v", got, tt.want)
			}
		})
	}
	_ = x.Peers("p2p", "gossip", func(r *ReadyPeers) {
		if r.Len() != 4 || r.AdvertisedPort() != 7946 {
			t.Errorf("Len = %d, AdvertisedPort = %d; want 4, 7946", r.Len(), r.AdvertisedPort())
		}
	})
	// Peers leaving change the count and the port most advertise.
	x.DeletePod("p2p", "g-0")
	x.DeletePod("p2p", "g-1")
	x.SetPod("p2p", "gossip", Peer{Name: "g-2", Node: "osaka-1", HostIP: "10.23.0.4", HostNetwork: true, Port: 7946}) // not ready
	_ = x.Peers("p2p", "gossip", func(r *ReadyPeers) {
		if r.Len() != 1 || r.AdvertisedPort() != 7000 {
			t.Errorf("after leaving: Len = %d, AdvertisedPort = %d; want 1, 7000", r.Len(), r.AdvertisedPort())
		}
	})
}
