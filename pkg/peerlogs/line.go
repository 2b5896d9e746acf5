// Package peerlogs merges the logs of every peer of an app into one stream,
// each line prefixed with where the peer runs (SITE/NODE/POD) and ordered by
// the time the kubelet stamped on it.
//
// The pure parts are here and in peers.go: reading a stamped line, the
// k-way merge of finished logs, the short reordering window of followed
// logs, the prefix and colour, and the choice of peers. stream.go is the
// thin layer that asks the API server for the logs and watches the pods.
package peerlogs

import (
	"container/heap"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Line is one log line of one peer.
type Line struct {
	// Time is the kubelet's stamp; Stamp is its text, kept with --timestamps.
	Time  time.Time
	Stamp string
	Text  string
	// Peer is the peer's Index.
	Peer int
}

// ParseLine reads a line the API server sent with timestamps=true
// ("2026-01-02T03:04:05.123456789Z text"). A line without a readable stamp
// keeps prev, the time of the peer's line before it, so that it stays in
// place in the merge.
func ParseLine(raw string, prev time.Time) Line {
	raw = strings.TrimSuffix(strings.TrimSuffix(raw, "\n"), "\r")
	stamp, text, _ := strings.Cut(raw, " ")
	t, err := time.Parse(time.RFC3339Nano, stamp)
	if err != nil {
		return Line{Time: prev, Text: raw}
	}
	return Line{Time: t, Stamp: stamp, Text: text}
}

// Merge interleaves the logs of several peers, each already in time order,
// into one in time order: a k-way merge. Lines with equal times keep the
// order of streams (the peers' order), then their order within a stream.
func Merge(streams [][]Line) []Line {
	h := &mergeHeap{}
	total := 0
	for i, s := range streams {
		total += len(s)
		if len(s) > 0 {
			h.items = append(h.items, cursor{stream: i, lines: s})
		}
	}
	heap.Init(h)
	out := make([]Line, 0, total)
	for h.Len() > 0 {
		c := &h.items[0]
		out = append(out, c.lines[0])
		if c.lines = c.lines[1:]; len(c.lines) == 0 {
			heap.Pop(h)
		} else {
			heap.Fix(h, 0)
		}
	}
	return out
}

type cursor struct {
	stream int
	lines  []Line
}

type mergeHeap struct{ items []cursor }

func (h *mergeHeap) Len() int { return len(h.items) }
func (h *mergeHeap) Less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	if c := a.lines[0].Time.Compare(b.lines[0].Time); c != 0 {
		return c < 0
	}
	return a.stream < b.stream
}
func (h *mergeHeap) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *mergeHeap) Push(x any)    { h.items = append(h.items, x.(cursor)) }
func (h *mergeHeap) Pop() any {
	last := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return last
}

// Window holds followed lines for a short delay and releases them in time
// order, so that lines of different peers arriving within the delay of each
// other come out ordered. No line is held longer than the delay.
type Window struct {
	Delay   time.Duration
	pending []held
	seq     int
}

type held struct {
	line    Line
	arrived time.Time
	seq     int
}

// Add takes a line that arrived at now.
func (w *Window) Add(l Line, now time.Time) {
	w.pending = append(w.pending, held{line: l, arrived: now, seq: w.seq})
	w.seq++
}

// Due releases, in time order, the lines whose delay has passed at now, and
// every line stamped before one of them.
func (w *Window) Due(now time.Time) []Line {
	cut := -1
	for i, h := range w.pending {
		if !h.arrived.Add(w.Delay).After(now) {
			cut = i
		}
	}
	if cut < 0 {
		return nil
	}
	w.sort()
	// The latest-stamped due line bounds the release: everything stamped
	// up to it goes out with it.
	var bound time.Time
	for _, h := range w.pending {
		if !h.arrived.Add(w.Delay).After(now) && h.line.Time.After(bound) {
			bound = h.line.Time
		}
	}
	n := 0
	for n < len(w.pending) && !w.pending[n].line.Time.After(bound) {
		n++
	}
	return w.take(n)
}

// Flush releases every held line in time order.
func (w *Window) Flush() []Line {
	w.sort()
	return w.take(len(w.pending))
}

func (w *Window) sort() {
	slices.SortStableFunc(w.pending, func(a, b held) int {
		if c := a.line.Time.Compare(b.line.Time); c != 0 {
			return c
		}
		return a.seq - b.seq
	})
}

func (w *Window) take(n int) []Line {
	out := make([]Line, 0, n)
	for _, h := range w.pending[:n] {
		out = append(out, h.line)
	}
	w.pending = slices.Delete(w.pending, 0, n)
	return out
}

// Format chooses how a line is printed.
type Format struct {
	// Prefix starts each line with [SITE/NODE/POD].
	Prefix bool
	// Timestamps keeps the kubelet's stamp after the prefix.
	Timestamps bool
	// Color paints each peer's prefix in its own colour (ANSI).
	Color bool
}

// palette is the prefix colours, one per peer in turn: red, green, yellow,
// blue, magenta, cyan, then their bright forms.
var palette = []int{31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96}

// Render is the printed form of l, a line of p, with its newline.
func (f Format) Render(p Peer, l Line) string {
	var b strings.Builder
	if f.Prefix {
		if f.Color {
			fmt.Fprintf(&b, "\x1b[%dm[%s]\x1b[0m ", palette[p.Index%len(palette)], p.Prefix())
		} else {
			fmt.Fprintf(&b, "[%s] ", p.Prefix())
		}
	}
	if f.Timestamps && l.Stamp != "" {
		b.WriteString(l.Stamp)
		b.WriteByte(' ')
	}
	b.WriteString(l.Text)
	b.WriteByte('\n')
	return b.String()
}
