package rollout

import (
	"strings"
	"testing"
)

func TestParsePeerGate(t *testing.T) {
	tests := []struct {
		in   string
		want PeerGate
		err  string
	}{
		{in: "3", want: PeerGate{Min: 3}},
		{in: "3,cross-site=1", want: PeerGate{Min: 3, CrossSite: 1}},
		{in: "2,cross-site=2", want: PeerGate{Min: 2, CrossSite: 2}},
		{in: "", err: "MIN is not a number"},
		{in: "three", err: "MIN is not a number"},
		{in: "0", err: "MIN must be at least 1"},
		{in: "-1", err: "MIN must be at least 1"},
		{in: "3,cross=1", err: "the only option is cross-site=N"},
		{in: "3,cross-site=x", err: "cross-site=N needs a number"},
		{in: "3,cross-site=-1", err: "cross-site=N needs a number"},
		{in: "1,cross-site=2", err: "cross-site=2 cannot exceed MIN 1"},
	}
	for _, tt := range tests {
		got, err := ParsePeerGate(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "write MIN[,cross-site=N]") {
				t.Errorf("ParsePeerGate(%q) = %v, want an error with %q naming the form", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParsePeerGate(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if back := FormatPeerGate(got); back != tt.in {
			t.Errorf("FormatPeerGate(%+v) = %q, want %q", got, back, tt.in)
		}
	}
}

func TestParseOnFailure(t *testing.T) {
	for _, ok := range []string{"pause", "undo"} {
		if got, err := ParseOnFailure(ok); err != nil || got != ok {
			t.Errorf("ParseOnFailure(%q) = %q, %v", ok, got, err)
		}
	}
	if _, err := ParseOnFailure("rollback"); err == nil || !strings.Contains(err.Error(), "write pause") {
		t.Errorf("ParseOnFailure(rollback) = %v", err)
	}
}

// A state is written in the oldest layout that carries its meaning, so
// that older runners keep driving the rollouts they understand and refuse
// the ones whose gates they would skip.
func TestStateLayout(t *testing.T) {
	for _, tt := range []struct {
		gates Gates
		want  int
	}{
		{Gates{}, 1},
		{Gates{OnFailure: OnFailurePause}, 1},
		{Gates{OnFailure: OnFailureUndo}, 2},
		{Gates{Peers: PeerGate{Min: 1}}, 2},
	} {
		annotations := map[string]string{}
		if err := writeAnnotations(annotations, &State{Gates: tt.gates}, nil); err != nil {
			t.Fatal(err)
		}
		s, _, err := ReadAnnotations(annotations)
		if err != nil || s.Version != tt.want {
			t.Errorf("gates %+v: version %d (%v), want %d", tt.gates, s.Version, err, tt.want)
		}
	}
}
