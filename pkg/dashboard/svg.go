package dashboard

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"

	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
)

// The picture's measures, in pixels.
const (
	siteWidth = 200
	siteGap   = 40
	margin    = 20
	rowHeight = 64
	radius    = 14
)

// WriteSVG draws the graph: a box per site, side by side, its peers in a
// column inside, and an arrow for each link (bold across sites); a peer
// that did not answer is dashed. Drawn here, in Go, so the page needs no
// graph library and works with no internet.
func WriteSVG(w io.Writer, g *v1alpha1.PeerGraph) error {
	type point struct{ x, y int }
	at := map[string]point{}
	var sites []string
	perSite := map[string]int{}
	for _, p := range g.Peers {
		if len(sites) == 0 || sites[len(sites)-1] != p.Site {
			sites = append(sites, p.Site)
		}
		col := len(sites) - 1
		at[p.Pod] = point{margin + col*(siteWidth+siteGap) + siteWidth/2, margin + 48 + perSite[p.Site]*rowHeight}
		perSite[p.Site]++
	}
	most := 0
	for _, n := range perSite {
		most = max(most, n)
	}
	width := 2*margin + len(sites)*(siteWidth+siteGap) - siteGap
	height := 2*margin + 36 + most*rowHeight
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">`+"\n",
		max(width, 2*margin), height, max(width, 2*margin), height, esc("peer graph of "+g.Namespace+"/"+g.Name))
	// Styled inside, so that the picture stands alone as a file too.
	b.WriteString(`<style>.site rect{fill:#f3f6fb;stroke:#c9d3e3}.site-name{font:600 13px sans-serif}` +
		`.link{stroke:#8a94a6;stroke-width:1}.link.cross{stroke:#2563eb;stroke-width:2.2}` +
		`.peer circle{fill:#22c55e;stroke:#14532d}.peer.down circle{fill:#fff;stroke:#b3261e;stroke-dasharray:3 2}` +
		`.peer text{font:11px sans-serif;text-anchor:middle}</style>` + "\n")
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>` + "\n")
	for i, site := range sites {
		x := margin + i*(siteWidth+siteGap)
		fmt.Fprintf(&b, `<g class="site"><rect x="%d" y="%d" width="%d" height="%d" rx="8"/><text x="%d" y="%d" class="site-name">%s</text></g>`+"\n",
			x, margin, siteWidth, 36+perSite[site]*rowHeight-8, x+10, margin+20, esc(orUnscheduled(site)))
	}
	for _, l := range g.Links {
		from, to := at[l.From], at[l.To]
		class := "link"
		if l.CrossSite {
			class = "link cross"
		}
		// Stop at the circle's edge, so the arrow shows.
		x2, y2 := edge(from.x, from.y, to.x, to.y)
		fmt.Fprintf(&b, `<line class="%s" x1="%d" y1="%d" x2="%d" y2="%d" marker-end="url(#arrow)"><title>%s</title></line>`+"\n",
			class, from.x, from.y, x2, y2, esc(l.From+" knows "+l.To))
	}
	for _, p := range g.Peers {
		pt := at[p.Pod]
		class, title := "peer", fmt.Sprintf("%s at %s: knows %d, %d at other sites", p.Pod, p.Node, p.Known, p.CrossSite)
		if !p.Answered {
			class, title = "peer down", p.Pod+": no answer: "+p.Error
		}
		fmt.Fprintf(&b, `<g class="%s"><circle cx="%d" cy="%d" r="%d"/><text x="%d" y="%d">%s</text><title>%s</title></g>`+"\n",
			class, pt.x, pt.y, radius, pt.x, pt.y+radius+14, esc(p.Pod), esc(title))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// edge is where the line from (x1,y1) to (x2,y2) enters the circle at
// (x2,y2).
func edge(x1, y1, x2, y2 int) (int, int) {
	dx, dy := float64(x2-x1), float64(y2-y1)
	length := math.Hypot(dx, dy)
	if length == 0 {
		return x2, y2
	}
	return x2 - int(dx/length*radius), y2 - int(dy/length*radius)
}

func esc(s string) string { return html.EscapeString(s) }

func orUnscheduled(site string) string {
	if site == "" {
		return "(no site)"
	}
	return site
}
