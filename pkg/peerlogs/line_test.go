package peerlogs

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseLine(t *testing.T) {
	prev := at("2026-01-01T00:00:00Z")
	tests := []struct {
		name, raw string
		want      Line
	}{
		{"kubelet stamp", "2026-01-02T03:04:05.123456789Z hello world\n",
			Line{Time: at("2026-01-02T03:04:05.123456789Z"), Stamp: "2026-01-02T03:04:05.123456789Z", Text: "hello world"}},
		{"offset stamp", "2026-01-02T12:04:05+09:00 tokyo\r\n",
			Line{Time: at("2026-01-02T03:04:05Z"), Stamp: "2026-01-02T12:04:05+09:00", Text: "tokyo"}},
		{"empty text", "2026-01-02T03:04:05Z \n", Line{Time: at("2026-01-02T03:04:05Z"), Stamp: "2026-01-02T03:04:05Z"}},
		{"stamp alone", "2026-01-02T03:04:05Z", Line{Time: at("2026-01-02T03:04:05Z"), Stamp: "2026-01-02T03:04:05Z"}},
		{"no stamp keeps prev", "panic: oops\n", Line{Time: prev, Text: "panic: oops"}},
		{"empty line keeps prev", "\n", Line{Time: prev}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseLine(tt.raw, prev)
			if !got.Time.Equal(tt.want.Time) || got.Stamp != tt.want.Stamp || got.Text != tt.want.Text {
				t.Errorf("ParseLine(%q) = %+v, want %+v", tt.raw, got, tt.want)
			}
		})
	}
}

// lines is a peer's log written as "SECONDS:text ...".
func lines(peer int, spec string) []Line {
	var out []Line
	for _, f := range strings.Fields(spec) {
		var sec int
		var text string
		if _, err := fmt.Sscanf(strings.Replace(f, ":", " ", 1), "%d %s", &sec, &text); err != nil {
			panic(err)
		}
		out = append(out, Line{Time: time.Unix(int64(sec), 0), Text: text, Peer: peer})
	}
	return out
}

func texts(ls []Line) string {
	var s []string
	for _, l := range ls {
		s = append(s, fmt.Sprintf("%d:%s", l.Peer, l.Text))
	}
	return strings.Join(s, " ")
}

func TestMerge(t *testing.T) {
	tests := []struct {
		name    string
		streams [][]Line
		want    string
	}{
		{"none", nil, ""},
		{"one stream", [][]Line{lines(0, "1:a 2:b")}, "0:a 0:b"},
		{"interleaved", [][]Line{lines(0, "1:a 4:d 6:f"), lines(1, "2:b 3:c"), lines(2, "5:e 7:g")}, "0:a 1:b 1:c 0:d 2:e 0:f 2:g"},
		{"ties go to the earlier stream, then keep stream order", [][]Line{lines(0, "1:a 1:b"), lines(1, "0:w 1:x")}, "1:w 0:a 0:b 1:x"},
		{"empty streams", [][]Line{nil, lines(1, "1:a"), {}}, "1:a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := texts(Merge(tt.streams)); got != tt.want {
				t.Errorf("Merge = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	type add struct {
		at   int // arrival, ms after t0
		line Line
	}
	tests := []struct {
		name  string
		adds  []add
		due   int // Due(t0+due ms)
		want  string
		after string // Flush
	}{
		{
			name: "nothing due before the delay",
			adds: []add{{0, lines(0, "5:a")[0]}},
			due:  99, want: "", after: "0:a",
		},
		{
			name: "due lines come out in time order",
			adds: []add{{0, lines(0, "5:b")[0]}, {10, lines(1, "4:a")[0]}},
			due:  110, want: "1:a 0:b", after: "",
		},
		{
			name: "a later arrival stamped earlier goes out with the due line",
			adds: []add{{0, lines(0, "5:b")[0]}, {90, lines(1, "4:a")[0]}, {95, lines(2, "6:c")[0]}},
			due:  100, want: "1:a 0:b", after: "2:c",
		},
		{
			name: "equal stamps keep arrival order",
			adds: []add{{0, lines(1, "5:x")[0]}, {1, lines(0, "5:y")[0]}},
			due:  200, want: "1:x 0:y",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &Window{Delay: 100 * time.Millisecond}
			for _, a := range tt.adds {
				w.Add(a.line, ms(a.at))
			}
			if got := texts(w.Due(ms(tt.due))); got != tt.want {
				t.Errorf("Due = %q, want %q", got, tt.want)
			}
			if got := texts(w.Flush()); got != tt.after {
				t.Errorf("Flush = %q, want %q", got, tt.after)
			}
		})
	}
}

func TestRender(t *testing.T) {
	p := Peer{Pod: "gossip-1", Node: "node-a", Site: "tokyo", Index: 7}
	l := Line{Stamp: "2026-01-02T03:04:05.000000001Z", Text: "joined 3 peers"}
	tests := []struct {
		name   string
		format Format
		line   Line
		want   string
	}{
		{"plain", Format{Prefix: true}, l, "[tokyo/node-a/gossip-1] joined 3 peers\n"},
		{"timestamps", Format{Prefix: true, Timestamps: true}, l, "[tokyo/node-a/gossip-1] 2026-01-02T03:04:05.000000001Z joined 3 peers\n"},
		{"colour of the peer's index", Format{Prefix: true, Color: true}, l, "\x1b[92m[tokyo/node-a/gossip-1]\x1b[0m joined 3 peers\n"},
		{"no prefix", Format{Timestamps: true}, l, "2026-01-02T03:04:05.000000001Z joined 3 peers\n"},
		{"line without stamp", Format{Prefix: true, Timestamps: true}, Line{Text: "  at main.go:3"}, "[tokyo/node-a/gossip-1]   at main.go:3\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.format.Render(p, tt.line); got != tt.want {
				t.Errorf("Render = %q, want %q", got, tt.want)
			}
		})
	}
}
