// Package node is the gossip example's peer: it joins through the seeds the
// stage webhook injected, gossips its membership table with random live
// peers over HTTP (push-pull), and serves its current view.
package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kubectl-stage/kubectl-stage/examples/gossip/membership"
)

// Config is the node's identity and where it finds peers.
type Config struct {
	Name    string
	Site    string
	Version string
	// Advertise is the ip:port peers dial (the overlay address).
	Advertise string
	// Listen is where the node serves; by default the advertise address, so
	// that peers can only reach it over the overlay.
	Listen string
	Seeds  []string
	// SeedURL is the stage seed endpoint (STAGE_SEED_URL): asked for the
	// current peers while this node knows no live one, so that a node whose
	// seeds have all left finds the network again.
	SeedURL string
	// Reseed is the least time between two questions to SeedURL.
	Reseed   time.Duration
	Interval time.Duration
	Fanout   int
}

// ConfigFromEnv reads what the stage webhook injects: STAGE_POD_NAME,
// STAGE_SITE, STAGE_ADVERTISE_ADDR (or STAGE_ADVERTISE_IP with port),
// STAGE_PEER_SEEDS (comma-separated ip:port) and STAGE_SEED_URL.
func ConfigFromEnv(getenv func(string) string, port int) (Config, error) {
	c := Config{
		Name: getenv("STAGE_POD_NAME"), Site: getenv("STAGE_SITE"), Version: getenv("GOSSIP_VERSION"),
		Advertise: getenv("STAGE_ADVERTISE_ADDR"), SeedURL: getenv("STAGE_SEED_URL"), Interval: time.Second, Fanout: 3,
	}
	if c.Name == "" {
		c.Name, _ = os.Hostname()
	}
	if c.Advertise == "" {
		ip := getenv("STAGE_ADVERTISE_IP")
		if ip == "" {
			return c, errors.New("neither STAGE_ADVERTISE_ADDR nor STAGE_ADVERTISE_IP is set: label the pod kubectl-stage.io/inject=enabled so the stage webhook injects them")
		}
		c.Advertise = net.JoinHostPort(ip, fmt.Sprint(port))
	}
	c.Seeds = addresses(strings.Split(getenv("STAGE_PEER_SEEDS"), ","), port)
	return c, nil
}

// addresses are the non-empty entries as ip:port, port where they have none.
func addresses(entries []string, port int) []string {
	var addrs []string
	for _, s := range entries {
		if s = strings.TrimSpace(s); s != "" {
			if _, _, err := net.SplitHostPort(s); err != nil {
				s = net.JoinHostPort(s, fmt.Sprint(port))
			}
			addrs = append(addrs, s)
		}
	}
	return addrs
}

// Node is a running peer.
type Node struct {
	cfg    Config
	table  *membership.Table
	client *http.Client
	log    *slog.Logger
	// asked is when SeedURL was last asked (only the gossip loop uses it).
	asked time.Time
}

// New creates the node; Serve runs it.
func New(cfg Config, log *slog.Logger) *Node {
	if cfg.Listen == "" {
		cfg.Listen = cfg.Advertise
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Fanout <= 0 {
		cfg.Fanout = 3
	}
	if cfg.Reseed <= 0 {
		// The seed endpoint's answers are fresh for 5 s.
		cfg.Reseed = 5 * time.Second
	}
	self := membership.Member{Name: cfg.Name, Site: cfg.Site, Addr: cfg.Advertise, Version: cfg.Version}
	n := &Node{cfg: cfg, table: membership.New(self, nil), client: &http.Client{Timeout: 2 * time.Second}, log: log}
	if len(cfg.Seeds) > 0 {
		// Its seeds first: the endpoint only once they have had a chance.
		n.asked = time.Now()
	}
	return n
}

// Handler serves POST /gossip (push-pull of views), GET /peers (this
// node's view) and GET /healthz.
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /gossip", func(w http.ResponseWriter, r *http.Request) {
		var view []membership.Member
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&view); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if added := n.table.Merge(view); added > 0 {
			n.log.Info("learned peers", "from", r.RemoteAddr, "new", added)
		}
		writeJSON(w, n.table.Snapshot())
	})
	mux.HandleFunc("GET /peers", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, View{Self: n.cfg.Name, Site: n.cfg.Site, Version: n.cfg.Version, Members: n.table.Snapshot()})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	return mux
}

// View is what GET /peers returns.
type View struct {
	Self    string              `json:"self"`
	Site    string              `json:"site"`
	Version string              `json:"version,omitempty"`
	Members []membership.Member `json:"members"`
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// Serve listens and gossips until ctx ends.
func (n *Node) Serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", n.cfg.Listen)
	if err != nil {
		return err
	}
	return n.ServeListener(ctx, ln)
}

// ServeListener serves on ln, already listening, and gossips until ctx
// ends; it closes ln.
func (n *Node) ServeListener(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: n.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	go n.gossip(ctx)
	n.log.Info("serving", "name", n.cfg.Name, "site", n.cfg.Site, "listen", n.cfg.Listen, "advertise", n.cfg.Advertise, "seeds", n.cfg.Seeds)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// gossip runs one round per interval: beat, exchange views with a few live
// peers (and the seeds until some peer is known), suspect the silent.
func (n *Node) gossip(ctx context.Context) {
	ticker := time.NewTicker(n.cfg.Interval)
	defer ticker.Stop()
	for {
		n.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (n *Node) round(ctx context.Context) {
	n.table.Beat()
	targets := []string{}
	peers := n.table.AlivePeers()
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	for _, p := range peers[:min(n.cfg.Fanout, len(peers))] {
		targets = append(targets, p.Addr)
	}
	if len(peers) == 0 {
		targets = append(targets, n.cfg.Seeds...)
		targets = append(targets, n.reseed(ctx)...)
	}
	for _, addr := range targets {
		if err := n.exchange(ctx, addr); err != nil && ctx.Err() == nil {
			n.log.Debug("gossip failed", "peer", addr, "err", err)
		}
	}
	n.table.Suspect(5 * n.cfg.Interval)
}

// reseed asks the seed endpoint for the current peers, at most once per
// cfg.Reseed; nil when there is none, it is too soon, or it fails.
func (n *Node) reseed(ctx context.Context) []string {
	if n.cfg.SeedURL == "" || time.Since(n.asked) < n.cfg.Reseed {
		return nil
	}
	n.asked = time.Now()
	seeds, err := n.askSeeds(ctx)
	if err != nil {
		n.log.Info("the seed endpoint did not answer", "url", n.cfg.SeedURL, "err", err)
		return nil
	}
	seeds = slices.DeleteFunc(seeds, func(addr string) bool { return addr == n.cfg.Advertise })
	n.log.Info("asked the seed endpoint: no live peer known", "seeds", seeds)
	return seeds
}

func (n *Node) askSeeds(ctx context.Context) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.cfg.SeedURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := n.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	_, port, err := net.SplitHostPort(n.cfg.Advertise)
	if err != nil {
		return nil, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, err
	}
	return addresses(strings.Split(string(body), "\n"), p), nil
}

func (n *Node) exchange(ctx context.Context, addr string) error {
	body, err := json.Marshal(n.table.Snapshot())
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/gossip", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", addr, resp.Status)
	}
	var view []membership.Member
	if err := json.NewDecoder(resp.Body).Decode(&view); err != nil {
		return err
	}
	if added := n.table.Merge(view); added > 0 {
		n.log.Info("learned peers", "from", addr, "new", added)
	}
	return nil
}
