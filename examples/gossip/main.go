// Command gossip is the example P2P app of kubectl-stage: a membership
// node that starts from the advertise address and peer seeds the stage
// webhook injects, finds the other peers by gossip, and serves its view of
// the membership at GET /peers.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kubectl-stage/kubectl-stage/examples/gossip/node"
)

// version is set at build time (-ldflags -X main.version=...).
var version = "dev"

func main() {
	// `gossip peers ADDR` prints a running node's view (for scripts and the demo).
	if len(os.Args) == 3 && os.Args[1] == "peers" {
		if err := printPeers(os.Args[2]); err != nil {
			fmt.Fprintf(os.Stderr, "error: %v\n", err)
			os.Exit(1)
		}
		return
	}
	port := flag.Int("port", 7946, "peer port, when only STAGE_ADVERTISE_IP is set")
	listen := flag.String("listen", "", "listen address (default: the advertise address, so peers reach it over the overlay only)")
	interval := flag.Duration("interval", time.Second, "gossip interval")
	debug := flag.Bool("debug", false, "log every gossip failure")
	flag.Parse()

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg, err := node.ConfigFromEnv(os.Getenv, *port)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(2)
	}
	if cfg.Version == "" {
		cfg.Version = version
	}
	cfg.Listen, cfg.Interval = *listen, *interval
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := node.New(cfg, log).Serve(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}

func printPeers(addr string) error {
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://" + addr + "/peers")
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", addr, resp.Status)
	}
	_, err = io.Copy(os.Stdout, resp.Body)
	return err
}
