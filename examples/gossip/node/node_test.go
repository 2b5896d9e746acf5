package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr bool
	}{
		{name: "address and seeds as injected", env: map[string]string{
			"STAGE_POD_NAME": "gossip-1", "STAGE_SITE": "osaka", "STAGE_ADVERTISE_ADDR": "10.23.0.3:7946",
			"STAGE_PEER_SEEDS": "10.23.0.2:7946, 10.23.0.4", "STAGE_SEED_URL": "http://seeds:8082/seeds/p2p/gossip?site=osaka",
		}, want: Config{Name: "gossip-1", Site: "osaka", Advertise: "10.23.0.3:7946", Seeds: []string{"10.23.0.2:7946", "10.23.0.4:7946"},
			SeedURL: "http://seeds:8082/seeds/p2p/gossip?site=osaka"}},
		{name: "ip only", env: map[string]string{"STAGE_POD_NAME": "p", "STAGE_ADVERTISE_IP": "10.23.0.9"},
			want: Config{Name: "p", Advertise: "10.23.0.9:7946"}},
		{name: "not injected", env: map[string]string{"STAGE_POD_NAME": "p"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ConfigFromEnv(func(k string) string { return tt.env[k] }, 7946)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v", err)
			}
			if err == nil && (got.Name != tt.want.Name || got.Site != tt.want.Site || got.Advertise != tt.want.Advertise || !slices.Equal(got.Seeds, tt.want.Seeds) || got.SeedURL != tt.want.SeedURL) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// Three real nodes on loopback, seeded as the webhook seeds them (the
// first with none, each later one with the ones before): all end up
// knowing all, including the pair that were never told about each other.
func TestNodesFindEachOtherThroughSeeds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var addrs []string
	// A node whose server fails says so in the failure, rather than
	// leaving the others alone.
	served := make(chan error, 3)
	for i, site := range []string{"tokyo", "osaka", "frankfurt"} {
		ln := listen(t)
		addr := ln.Addr().String()
		cfg := Config{Name: fmt.Sprintf("gossip-%d", i), Site: site, Advertise: addr, Interval: 50 * time.Millisecond}
		// Every earlier node, as the webhook gives the ready peers: with
		// only the previous one, two nodes that reach each other before
		// either asks its seed would stay an island (a node asks its seeds
		// only while it knows no live peer).
		cfg.Seeds = slices.Clone(addrs)
		addrs = append(addrs, addr)
		go func() {
			if err := New(cfg, log).ServeListener(ctx, ln); err != nil && ctx.Err() == nil {
				served <- fmt.Errorf("%s: %w", cfg.Name, err)
			}
		}()
	}
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		for _, addr := range addrs {
			if v, err := peers(addr); err != nil || len(v.Members) != 3 {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		v, _ := peers(addrs[0])
		var stopped []error
		for len(served) > 0 {
			stopped = append(stopped, <-served)
		}
		t.Fatalf("the nodes never all knew each other; gossip-0 sees %+v; nodes that stopped serving: %v", v, stopped)
	}
	v, _ := peers(addrs[0])
	if v.Self != "gossip-0" || v.Members[2].Site != "osaka" && v.Members[1].Site != "osaka" {
		t.Errorf("view %+v", v)
	}
}

// A node started with seeds that are all gone finds the network through
// the seed endpoint, which lists it too (it must not gossip with itself)
// and answers in plain text.
func TestNodeReseedsFromSeedEndpoint(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	liveListener, lateListener := listen(t), listen(t)
	live, late := liveListener.Addr().String(), lateListener.Addr().String()
	go func() {
		_ = New(Config{Name: "gossip-live", Site: "tokyo", Advertise: live, Interval: 50 * time.Millisecond}, log).ServeListener(ctx, liveListener)
	}()
	stale := freeAddr(t) // nothing listens there any more
	asked := make(chan string, 100)
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked <- r.Header.Get("Accept")
		_, _ = fmt.Fprintf(w, "%s\n%s\n", late, live)
	}))
	defer endpoint.Close()
	go func() {
		_ = New(Config{Name: "gossip-late", Site: "osaka", Advertise: late, Seeds: []string{stale}, SeedURL: endpoint.URL + "/seeds/p2p/gossip",
			Reseed: 200 * time.Millisecond, Interval: 50 * time.Millisecond}, log).ServeListener(ctx, lateListener)
	}()
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		v, err := peers(late)
		return err == nil && len(v.Members) == 2, nil
	})
	if err != nil {
		v, _ := peers(late)
		t.Fatalf("the node with stale seeds never found the live one: %+v", v)
	}
	if accept := <-asked; accept != "text/plain" {
		t.Errorf("asked with Accept %q, want text/plain", accept)
	}
	v, _ := peers(late)
	names := []string{v.Members[0].Name, v.Members[1].Name}
	slices.Sort(names)
	if !slices.Equal(names, []string{"gossip-late", "gossip-live"}) {
		t.Errorf("members %v", names)
	}
}

func peers(addr string) (View, error) {
	var v View
	resp, err := http.Get("http://" + addr + "/peers")
	if err != nil {
		return v, err
	}
	defer func() { _ = resp.Body.Close() }()
	return v, json.NewDecoder(resp.Body).Decode(&v)
}

// listen binds a port on loopback for a node to serve on: bound before the
// node starts, so no other test process can take it in between.
func listen(t *testing.T) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// freeAddr is an address nothing listens on (for a seed that has left).
func freeAddr(t *testing.T) string {
	ln := listen(t)
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}
