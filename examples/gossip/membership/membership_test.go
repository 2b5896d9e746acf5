package membership

import (
	"testing"
	"time"
)

func TestMergeKeepsHigherHeartbeatAndSuspects(t *testing.T) {
	clock := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	tbl := New(Member{Name: "a", Site: "tokyo", Addr: "10.23.0.2:7946"}, now)

	tests := []struct {
		name      string
		view      []Member
		wantAdded int
		wantB     uint64
		wantAddr  string
	}{
		{"new member", []Member{{Name: "b", Site: "osaka", Addr: "10.23.0.3:7946", Heartbeat: 5}}, 1, 5, "10.23.0.3:7946"},
		{"older heartbeat ignored", []Member{{Name: "b", Addr: "10.9.9.9:1", Heartbeat: 3}}, 0, 5, "10.23.0.3:7946"},
		{"newer heartbeat wins", []Member{{Name: "b", Site: "osaka", Addr: "10.23.0.4:7946", Heartbeat: 6}}, 0, 6, "10.23.0.4:7946"},
		{"self and junk ignored", []Member{{Name: "a", Addr: "x", Heartbeat: 99}, {Name: "", Addr: "y"}, {Name: "c"}}, 0, 6, "10.23.0.4:7946"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tbl.Merge(tt.view); got != tt.wantAdded {
				t.Errorf("added %d, want %d", got, tt.wantAdded)
			}
			var b Member
			for _, m := range tbl.Snapshot() {
				if m.Name == "b" {
					b = m
				}
			}
			if b.Heartbeat != tt.wantB || b.Addr != tt.wantAddr {
				t.Errorf("b = %+v", b)
			}
		})
	}
	if self := tbl.Snapshot()[0]; self.Heartbeat != 0 {
		t.Errorf("a peer's claim about us must not change our heartbeat: %+v", self)
	}
	clock = clock.Add(10 * time.Second)
	tbl.Beat()
	tbl.Suspect(5 * time.Second)
	if peers := tbl.AlivePeers(); len(peers) != 0 {
		t.Errorf("b stopped beating 10s ago but is alive: %+v", peers)
	}
	tbl.Merge([]Member{{Name: "b", Addr: "10.23.0.4:7946", Heartbeat: 7}})
	if peers := tbl.AlivePeers(); len(peers) != 1 {
		t.Errorf("b beat again but is not alive: %+v", peers)
	}
}
