// Package membership is the peer table of the gossip example: each member
// counts its own heartbeat up, views are merged by keeping the higher
// heartbeat, and a member whose heartbeat stops moving is suspected.
package membership

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// Member is one peer as seen by this node.
type Member struct {
	Name      string `json:"name"`
	Site      string `json:"site"`
	Addr      string `json:"addr"`
	Version   string `json:"version,omitempty"`
	Heartbeat uint64 `json:"heartbeat"`
	// LastSeen is when this node last saw the heartbeat move (local time).
	LastSeen time.Time `json:"lastSeen"`
	Alive    bool      `json:"alive"`
}

// Table is the node's view of the membership, safe for concurrent use.
type Table struct {
	mu      sync.Mutex
	self    string
	members map[string]*Member
	now     func() time.Time
}

// New starts a table that knows only itself.
func New(self Member, now func() time.Time) *Table {
	if now == nil {
		now = time.Now
	}
	self.LastSeen, self.Alive = now(), true
	return &Table{self: self.Name, members: map[string]*Member{self.Name: &self}, now: now}
}

// Beat counts this node's heartbeat up; call it once per gossip round.
func (t *Table) Beat() {
	t.mu.Lock()
	defer t.mu.Unlock()
	me := t.members[t.self]
	me.Heartbeat++
	me.LastSeen = t.now()
}

// Merge folds a peer's view into this one and reports how many members
// were new.
func (t *Table) Merge(view []Member) (added int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, m := range view {
		if m.Name == "" || m.Name == t.self || m.Addr == "" {
			continue
		}
		known, ok := t.members[m.Name]
		if !ok {
			m.LastSeen, m.Alive = now, true
			t.members[m.Name] = &m
			added++
			continue
		}
		if m.Heartbeat > known.Heartbeat {
			known.Heartbeat, known.Addr, known.Site, known.Version = m.Heartbeat, m.Addr, m.Site, m.Version
			known.LastSeen, known.Alive = now, true
		}
	}
	return added
}

// Suspect marks members whose heartbeat has not moved for timeout.
func (t *Table) Suspect(timeout time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for name, m := range t.members {
		if name != t.self && now.Sub(m.LastSeen) > timeout {
			m.Alive = false
		}
	}
}

// Snapshot is the view, sorted by name, to serve or gossip.
func (t *Table) Snapshot() []Member {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Member, 0, len(t.members))
	for _, m := range t.members {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// AlivePeers are the live members other than this node.
func (t *Table) AlivePeers() []Member {
	var out []Member
	for _, m := range t.Snapshot() {
		if m.Name != t.self && m.Alive {
			out = append(out, m)
		}
	}
	return out
}
