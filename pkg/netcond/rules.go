package netcond

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// What the agent owns on a node: one nftables table and one root qdisc on
// the overlay device, each recognisable by name or handle, so that removing
// them removes every rule it added and nothing else.
const (
	// Table is the nftables table (family inet).
	Table = "kubectl-stage-net"
	// RootHandle is the major handle of the agent's root htb qdisc on the
	// overlay device ("ST" in ASCII), which no default qdisc uses.
	RootHandle = "5354:"
	// unlimitedRate is the rate of a class that only carries a netem delay.
	unlimitedRate = "10gbit"
)

// NetemMissing is the reason latency and jitter are not applied where the
// kernel has no sch_netem.
const NetemMissing = "kernel lacks sch_netem"

// Node is an enrolled node as the rules see it.
type Node struct {
	Name      string
	Site      string
	OverlayIP netip.Addr
}

// Input is everything one node's rules depend on.
type Input struct {
	Doc *Document
	// Self is the node the rules are for; Nodes every enrolled node.
	Self  string
	Nodes []Node
	// Hub is the hub's overlay address, never classified nor dropped.
	Hub netip.Addr
	// Device is the node's overlay interface.
	Device string
	// Netem says whether the kernel can delay packets (sch_netem).
	Netem bool
}

// Command is one command line, with what it reads on standard input.
type Command struct {
	Args  []string
	Stdin string
}

func (c Command) String() string {
	s := strings.Join(c.Args, " ")
	if c.Stdin != "" {
		s += " <<EOF\n" + c.Stdin + "EOF"
	}
	return s
}

// PairStatus is what one node does for one direction towards a remote site.
type PairStatus struct {
	From   string     `json:"from"`
	To     string     `json:"to"`
	Target Conditions `json:"target"`
	// Applied names the conditions in place: partition, loss, bandwidth, latency.
	Applied []string `json:"applied,omitempty"`
	// NotApplied gives, per condition not in place, why.
	NotApplied map[string]string `json:"notApplied,omitempty"`
}

// Plan is the commands that put one node's rules in place (after Reset's
// have removed the previous ones) and what they achieve per remote site.
type Plan struct {
	Commands []Command
	Pairs    []PairStatus
}

// Reset is what removes every rule the agent may have added to device; each
// fails harmlessly when there is nothing to remove (see IsAbsent). The root
// qdisc is deleted only when it is the agent's, checked by the applier.
func Reset(device string) []Command {
	return []Command{
		{Args: []string{"nft", "delete", "table", "inet", Table}},
		{Args: []string{"tc", "qdisc", "del", "dev", device, "root", "handle", RootHandle}},
	}
}

// IsAbsent says whether a Reset command's error output means there was
// nothing to remove.
func IsAbsent(stderr string) bool {
	for _, s := range []string{"No such file or directory", "Cannot find specified qdisc", "Cannot delete qdisc with handle of zero", "Invalid handle"} {
		if strings.Contains(stderr, s) {
			return true
		}
	}
	return false
}

// Rules decides the commands for in.Self: per remote site, in site order,
// egress shaping on the device by the remote nodes' overlay addresses (tc
// htb classes with u32 filters, netem under them where the kernel has it),
// random drops for loss and drops both ways for a partition (nftables).
// The hub's address is accepted before anything else in every chain, and
// never put in a class.
func Rules(in Input) (Plan, error) {
	var self *Node
	for i := range in.Nodes {
		if in.Nodes[i].Name == in.Self {
			self = &in.Nodes[i]
		}
	}
	if self == nil {
		return Plan{}, fmt.Errorf("node %q is not enrolled: no record names it", in.Self)
	}
	remote := map[string][]netip.Addr{}
	for _, n := range in.Nodes {
		if n.Site == self.Site || n.OverlayIP == in.Hub || !n.OverlayIP.IsValid() {
			continue
		}
		remote[n.Site] = append(remote[n.Site], n.OverlayIP)
	}
	sites := make([]string, 0, len(remote))
	for s := range remote {
		sites = append(sites, s)
	}
	slices.Sort(sites)

	var plan Plan
	var tc []Command
	var out, in4 []string // nft rules in the output/forward-out and input/forward-in directions
	dev := strconv.Quote(in.Device)
	classes := 0
	for _, site := range sites {
		addrs := remote[site]
		slices.SortFunc(addrs, netip.Addr.Compare)
		set := addrSet(addrs)
		c := in.Doc.Between(self.Site, site)
		st := PairStatus{From: self.Site, To: site, Target: c}
		if c.IsEmpty() {
			continue
		}
		comment := strconv.Quote(self.Site + " -> " + site)
		// A partition cuts both directions at each end, so that either
		// end alone enforces it.
		if c.Partitioned() || in.Doc.Between(site, self.Site).Partitioned() {
			out = append(out, fmt.Sprintf("oifname %s ip daddr %s drop comment %s", dev, set, comment))
			in4 = append(in4, fmt.Sprintf("iifname %s ip saddr %s drop comment %s", dev, set, strconv.Quote(site+" -> "+self.Site)))
		}
		if c.Partitioned() {
			st.Applied = append(st.Applied, "partition")
			plan.Pairs = append(plan.Pairs, st)
			continue
		}
		if c.LossPercent != nil {
			basisPoints := int(*c.LossPercent*100 + 0.5)
			out = append(out, fmt.Sprintf("oifname %s ip daddr %s numgen random mod 10000 < %d drop comment %s", dev, set, basisPoints, comment))
			st.Applied = append(st.Applied, "loss")
		}
		delay := c.Latency != ""
		if c.Bandwidth != "" || (delay && in.Netem) {
			classes++
			if classes == 1 {
				tc = append(tc, Command{Args: []string{"tc", "qdisc", "add", "dev", in.Device, "root", "handle", RootHandle, "htb"}})
			}
			classID := fmt.Sprintf("%s%x", RootHandle, classes)
			rate := unlimitedRate
			if c.Bandwidth != "" {
				rate = strings.ToLower(c.Bandwidth)
				st.Applied = append(st.Applied, "bandwidth")
			}
			tc = append(tc, Command{Args: []string{"tc", "class", "add", "dev", in.Device, "parent", RootHandle, "classid", classID, "htb", "rate", rate, "ceil", rate}})
			if delay && in.Netem {
				netem := []string{"tc", "qdisc", "add", "dev", in.Device, "parent", classID, "handle", fmt.Sprintf("%x:", 0x10+classes), "netem", "delay", msString(c.Latency)}
				if c.Jitter != "" {
					netem = append(netem, msString(c.Jitter))
				}
				tc = append(tc, Command{Args: netem})
				st.Applied = append(st.Applied, "latency")
			}
			for _, a := range addrs {
				tc = append(tc, Command{Args: []string{"tc", "filter", "add", "dev", in.Device, "parent", RootHandle, "protocol", "ip", "prio", "1", "u32", "match", "ip", "dst", a.String() + "/32", "flowid", classID}})
			}
		}
		if delay && !in.Netem {
			st.NotApplied = map[string]string{"latency": NetemMissing}
		}
		plan.Pairs = append(plan.Pairs, st)
	}
	if len(out)+len(in4) > 0 {
		plan.Commands = append(plan.Commands, Command{Args: []string{"nft", "-f", "-"}, Stdin: nftScript(in.Hub, out, in4)})
	}
	plan.Commands = append(plan.Commands, tc...)
	return plan, nil
}

// nftScript is one atomic nft transaction: the table in full. Output and
// forward share the egress rules, input and forward the ingress ones, so
// that the host's and its pods' traffic (forwarded for hostPort) alike
// suffer the conditions.
func nftScript(hub netip.Addr, egress, ingress []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", Table)
	chain := func(name, hook string, rules ...[]string) {
		fmt.Fprintf(&b, "\tchain %s {\n\t\ttype filter hook %s priority filter; policy accept;\n", name, hook)
		// The hub carries the API server and the VPN: never dropped.
		fmt.Fprintf(&b, "\t\tip daddr %s accept\n\t\tip saddr %s accept\n", hub, hub)
		for _, rs := range rules {
			for _, r := range rs {
				fmt.Fprintf(&b, "\t\t%s\n", r)
			}
		}
		fmt.Fprintf(&b, "\t}\n")
	}
	chain("output", "output", egress)
	chain("input", "input", ingress)
	chain("forward", "forward", egress, ingress)
	fmt.Fprintf(&b, "}\n")
	return b.String()
}

func addrSet(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return "{ " + strings.Join(s, ", ") + " }"
}

// msString writes a validated duration as tc reads it.
func msString(s string) string {
	d, _ := time.ParseDuration(s)
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', -1, 64) + "ms"
}
