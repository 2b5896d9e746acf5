package mutate

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// indexed lists what the index offers as seeds: per site, the names of the
// peers reachable at port, sorted.
func indexed(x *Index, namespace, app string, port int) string {
	var out []string
	_ = x.Peers(namespace, app, func(r *ReadyPeers) {
		for _, site := range r.Sites() {
			c := r.Reachable(site, port)
			var names []string
			for i := range c.Len() {
				names = append(names, c.At(i).Name)
			}
			slices.Sort(names)
			out = append(out, site+"="+strings.Join(names, ","))
		}
	})
	return strings.Join(out, " ")
}

func TestIndex(t *testing.T) {
	ready := func(name, node, ip string) Peer {
		return Peer{Name: name, Node: node, HostIP: ip, Ready: true, HostNetwork: true}
	}
	tests := []struct {
		name   string
		events func(x *Index)
		port   int
		want   string
		sites  string
	}{
		{"add", func(x *Index) {
			x.SetPod("p2p", "gossip", ready("a", "tokyo-1", "10.23.0.2"))
			x.SetPod("p2p", "gossip", ready("b", "osaka-1", "10.23.0.3"))
		}, 0, "osaka=b tokyo=a", "osaka,tokyo"},
		{"a node's site arrives after its pod", func(x *Index) {
			x.DeleteNode("tokyo-1")
			x.SetPod("p2p", "gossip", ready("a", "tokyo-1", "10.23.0.2"))
			if got := indexed(x, "p2p", "gossip", 0); got != "=a" {
				t.Errorf("before the site: %q", got)
			}
			x.SetNode("tokyo-1", "tokyo")
		}, 0, "tokyo=a", "osaka,tokyo"},
		{"not ready, then ready", func(x *Index) {
			p := ready("a", "tokyo-1", "10.23.0.2")
			p.Ready = false
			x.SetPod("p2p", "gossip", p)
			x.SetPod("p2p", "gossip", ready("b", "osaka-1", "10.23.0.3"))
			if got := indexed(x, "p2p", "gossip", 0); got != "osaka=b" {
				t.Errorf("before ready: %q", got)
			}
			x.SetPod("p2p", "gossip", ready("a", "tokyo-1", "10.23.0.2"))
		}, 0, "osaka=b tokyo=a", "osaka,tokyo"},
		{"becomes not ready", func(x *Index) {
			x.SetPod("p2p", "gossip", ready("a", "tokyo-1", "10.23.0.2"))
			p := ready("a", "tokyo-1", "10.23.0.2")
			p.Ready = false
			x.SetPod("p2p", "gossip", p)
		}, 0, "", "osaka,tokyo"},
		{"moves node", func(x *Index) {
			x.SetPod("p2p", "gossip", ready("a", "tokyo-1", "10.23.0.2"))
			x.SetPod("p2p", "gossip", ready("b", "tokyo-1", "10.23.0.2"))
			x.SetPod("p2p", "gossip", ready("a", "osaka-1", "10.23.0.3"))
		}, 0, "osaka=a tokyo=b", "osaka,tokyo"},
		{"a node changes site", func(x *Index) {
			x.SetPod("p2p", "gossip", ready("a", "tokyo-1", "10.23.0.2"))
			x.SetPod("p2p", "gossip", ready("b", "tokyo-1", "10.23.0.2"))
			x.SetNode("tokyo-1", "frankfurt")
		}, 0, "frankfurt=a,b", "frankfurt,osaka"},
		{"a node is deleted: its pods are at no site", func(x *Index) {
			x.SetPod("p2p", "gossip", ready("a", "osaka-1", "10.23.0.3"))
			x.DeleteNode("osaka-1")
		}, 0, "=a", "tokyo"},
		{"delete", func(x *Index) {
			x.SetPod("p2p", "gossip", ready("a", "tokyo-1", "10.23.0.2"))
			x.SetPod("p2p", "gossip", ready("b", "tokyo-1", "10.23.0.2"))
			x.SetPod("p2p", "gossip", ready("c", "tokyo-1", "10.23.0.2"))
			x.DeletePod("p2p", "a")
			x.DeletePod("p2p", "unknown")
		}, 0, "tokyo=b,c", "osaka,tokyo"},
		{"delete the last peer", func(x *Index) {
			x.SetPod("p2p", "gossip", ready("a", "tokyo-1", "10.23.0.2"))
			x.DeletePod("p2p", "a")
		}, 0, "", "osaka,tokyo"},
		{"changes app", func(x *Index) {
			x.SetPod("p2p", "gossip", ready("a", "tokyo-1", "10.23.0.2"))
			x.SetPod("p2p", "other", ready("a", "tokyo-1", "10.23.0.2"))
		}, 0, "", "osaka,tokyo"},
		{"other namespaces and apps are apart", func(x *Index) {
			x.SetPod("p2p", "gossip", ready("a", "tokyo-1", "10.23.0.2"))
			x.SetPod("other", "gossip", ready("x", "tokyo-1", "10.23.0.2"))
			x.SetPod("p2p", "dht", ready("y", "tokyo-1", "10.23.0.2"))
		}, 0, "tokyo=a", "osaka,tokyo"},
		{"reachable by hostPort at that port only", func(x *Index) {
			x.SetPod("p2p", "gossip", ready("a", "tokyo-1", "10.23.0.2"))
			x.SetPod("p2p", "gossip", Peer{Name: "b", Node: "tokyo-1", HostIP: "10.23.0.2", Ready: true, HostPorts: []int32{4001, 4001, 5001}})
			x.SetPod("p2p", "gossip", Peer{Name: "c", Node: "osaka-1", HostIP: "10.23.0.3", Ready: true, HostPorts: []int32{5001}})
			x.SetPod("p2p", "gossip", Peer{Name: "d", Node: "osaka-1", HostIP: "10.23.0.3", Ready: true}) // the pod network: never
		}, 4001, "osaka= tokyo=a,b", "osaka,tokyo"},
		{"a hostPort peer leaves", func(x *Index) {
			x.SetPod("p2p", "gossip", Peer{Name: "b", Node: "tokyo-1", HostIP: "10.23.0.2", Ready: true, HostPorts: []int32{4001}})
			x.SetPod("p2p", "gossip", Peer{Name: "c", Node: "tokyo-1", HostIP: "10.23.0.2", Ready: true, HostPorts: []int32{4001}})
			x.DeletePod("p2p", "b")
		}, 4001, "tokyo=c", "osaka,tokyo"},
		{"no address yet", func(x *Index) {
			x.SetPod("p2p", "gossip", ready("a", "tokyo-1", ""))
		}, 0, "", "osaka,tokyo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := NewIndex()
			x.SetNode("tokyo-1", "tokyo")
			x.SetNode("osaka-1", "osaka")
			tt.events(x)
			if got := indexed(x, "p2p", "gossip", tt.port); got != tt.want {
				t.Errorf("peers = %q, want %q", got, tt.want)
			}
			if got := strings.Join(x.Sites(), ","); got != tt.sites {
				t.Errorf("sites = %q, want %q", got, tt.sites)
			}
		})
	}
}

func TestIndexSitesCountNodes(t *testing.T) {
	x := NewIndex()
	x.SetNode("tokyo-1", "tokyo")
	x.SetNode("tokyo-2", "tokyo")
	x.SetNode("tokyo-2", "tokyo") // again: no change
	x.SetNode("osaka-1", "osaka")
	before := x.Sites()
	x.DeleteNode("tokyo-1")
	if got := strings.Join(x.Sites(), ","); got != "osaka,tokyo" {
		t.Errorf("tokyo-2 is still at tokyo: sites %q", got)
	}
	x.SetNode("tokyo-2", "")
	if got := strings.Join(x.Sites(), ","); got != "osaka" {
		t.Errorf("sites %q, want osaka", got)
	}
	if strings.Join(before, ",") != "osaka,tokyo" {
		t.Errorf("a Sites() result changed afterwards: %q", before)
	}
}

// Events and reads at once (run with -race): a reader sees each site's
// peers whole.
func TestIndexConcurrentEventsAndReads(t *testing.T) {
	x := NewIndex()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				name := fmt.Sprintf("p-%d-%d", w, i%50)
				node := fmt.Sprintf("n-%d", i%7)
				switch i % 5 {
				case 0:
					x.DeletePod("p2p", name)
				case 1:
					x.SetNode(node, fmt.Sprintf("site-%d", i%3))
				default:
					x.SetPod("p2p", "gossip", Peer{Name: name, Node: node, HostIP: "10.23.0." + fmt.Sprint(i%7+1), Ready: i%4 != 0, HostNetwork: true})
				}
			}
		}()
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				_ = x.Sites()
				_ = x.Peers("p2p", "gossip", func(r *ReadyPeers) {
					_ = SeedsFor(r, SeedQuery{Key: fmt.Sprint(i), N: 3})
					for _, site := range r.Sites() {
						c := r.Reachable(site, 0)
						for j := range c.Len() {
							if p := c.At(j); p.Site != site || !p.Ready {
								t.Errorf("%s listed at %s (ready %t)", p.Name, site, p.Ready)
							}
						}
					}
				})
			}
		}()
	}
	wg.Wait()
}
