package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/kubectl-stage/kubectl-stage/pkg/netcond"
)

// ProbePort is the UDP port every agent answers probes on, at its overlay
// address.
const ProbePort = 51830

// probeMagic starts every probe; the byte after it tells a request from a reply.
var probeMagic = [4]byte{'S', 'T', 'G', 'P'}

const (
	probeRequest = 'Q'
	probeReply   = 'R'
	probeSize    = 4 + 1 + 8
)

// Prober measures round trips to the other nodes over the overlay with its
// own UDP echo: each Interval it sends one probe to at most PerRound peers
// (round robin over all of them, so that many nodes cost the same rate),
// and keeps the last Window results per peer.
type Prober struct {
	// Self is this node's overlay address, where probes leave and are
	// answered; SetPeers sets it.
	Self netip.Addr
	// Port is where every agent answers; 0 is ProbePort.
	Port     uint16
	Interval time.Duration
	PerRound int
	Window   int
	// Timeout counts a probe unanswered after it as lost.
	Timeout time.Duration
	Log     func(string, ...any)

	mu      sync.Mutex
	peers   []netcond.Node
	next    int
	seq     uint64
	pending map[uint64]pendingProbe
	results map[string][]probeResult // by node name
	sent    int64
}

type pendingProbe struct {
	node string
	at   time.Time
}

type probeResult struct {
	rtt  time.Duration
	lost bool
}

// SetPeers sets this node's overlay address and the nodes probed (every
// enrolled node but this one).
func (p *Prober) SetPeers(self netip.Addr, nodes []netcond.Node) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Self = self
	p.peers = nil
	keep := map[string]bool{}
	for _, n := range nodes {
		if n.OverlayIP != p.Self && n.OverlayIP.IsValid() {
			p.peers = append(p.peers, n)
			keep[n.Name] = true
		}
	}
	slices.SortFunc(p.peers, func(a, b netcond.Node) int { return a.OverlayIP.Compare(b.OverlayIP) })
	for name := range p.results {
		if !keep[name] {
			delete(p.results, name)
		}
	}
}

func (p *Prober) port() uint16 {
	if p.Port == 0 {
		return ProbePort
	}
	return p.Port
}

// Sent is how many probes were sent so far.
func (p *Prober) Sent() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent
}

// Run answers probes and sends them until ctx ends.
func (p *Prober) Run(ctx context.Context) error {
	var conn *net.UDPConn
	// This node's address comes with the records, and may not be up on the
	// interface yet when the agent starts.
	for {
		p.mu.Lock()
		self := p.Self
		p.mu.Unlock()
		if self.IsValid() {
			var err error
			if conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(self, p.port()))); err == nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	p.mu.Lock()
	p.pending, p.results = map[uint64]pendingProbe{}, map[string][]probeResult{}
	p.mu.Unlock()
	go p.send(ctx, conn)
	buf := make([]byte, 64)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("probe socket: %w", err)
		}
		if n != probeSize || [4]byte(buf[:4]) != probeMagic {
			continue
		}
		switch buf[4] {
		case probeRequest:
			buf[4] = probeReply
			_, _ = conn.WriteToUDPAddrPort(buf[:n], from)
		case probeReply:
			p.answered(binary.BigEndian.Uint64(buf[5:13]), time.Now())
		}
	}
}

func (p *Prober) send(ctx context.Context, conn *net.UDPConn) {
	ticker := time.NewTicker(p.Interval)
	defer ticker.Stop()
	packet := make([]byte, probeSize)
	copy(packet, probeMagic[:])
	packet[4] = probeRequest
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		now := time.Now()
		p.mu.Lock()
		p.expire(now)
		var round []netcond.Node
		for i := 0; i < p.PerRound && i < len(p.peers); i++ {
			round = append(round, p.peers[(p.next+i)%len(p.peers)])
		}
		if len(p.peers) > 0 {
			p.next = (p.next + len(round)) % len(p.peers)
		}
		seqs := make([]uint64, len(round))
		for i, n := range round {
			p.seq++
			seqs[i] = p.seq
			p.pending[p.seq] = pendingProbe{node: n.Name, at: now}
			p.sent++
		}
		p.mu.Unlock()
		for i, n := range round {
			binary.BigEndian.PutUint64(packet[5:], seqs[i])
			// A send refused (a partitioned peer's drop rule) is a lost probe.
			_, _ = conn.WriteToUDPAddrPort(packet, netip.AddrPortFrom(n.OverlayIP, p.port()))
		}
	}
}

// expire counts probes older than Timeout as lost; p.mu is held.
func (p *Prober) expire(now time.Time) {
	for seq, pp := range p.pending {
		if now.Sub(pp.at) > p.Timeout {
			delete(p.pending, seq)
			p.record(pp.node, probeResult{lost: true})
		}
	}
}

func (p *Prober) answered(seq uint64, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pp, ok := p.pending[seq]
	if !ok {
		return
	}
	delete(p.pending, seq)
	p.record(pp.node, probeResult{rtt: at.Sub(pp.at)})
}

func (p *Prober) record(node string, r probeResult) {
	rs := append(p.results[node], r)
	if len(rs) > p.Window {
		rs = rs[len(rs)-p.Window:]
	}
	p.results[node] = rs
}

// Figures summarises every peer's window, in node order.
func (p *Prober) Figures() []netcond.PeerFigures {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []netcond.PeerFigures
	for _, n := range p.peers {
		rs := p.results[n.Name]
		if len(rs) == 0 {
			continue
		}
		var rtts []time.Duration
		for _, r := range rs {
			if !r.lost {
				rtts = append(rtts, r.rtt)
			}
		}
		out = append(out, netcond.Summarize(n.Name, n.Site, len(rs), rtts))
	}
	slices.SortFunc(out, func(a, b netcond.PeerFigures) int {
		if a.Node < b.Node {
			return -1
		}
		if a.Node > b.Node {
			return 1
		}
		return 0
	})
	return out
}
