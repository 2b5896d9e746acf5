package netcond

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

var sites = []string{"asia", "europe", "us"}

func parse(t *testing.T, text string) *Document {
	t.Helper()
	d := &Document{}
	if err := yaml.UnmarshalStrict([]byte(text), d); err != nil {
		t.Fatal(err)
	}
	return d
}

const header = "apiVersion: kubectl-stage.io/v1alpha1\nkind: NetworkConditions\n"

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		// wantErr are substrings of the error, each naming the fix; none: valid.
		wantErr  []string
		wantWarn string
	}{
		{name: "three continents", doc: header + `
default: {latency: 20ms}
pairs:
- {sites: [europe, us], latency: 40ms, jitter: 5ms}
- {from: asia, to: us, bandwidth: 10mbit, lossPercent: 2.5}
`},
		{name: "empty document", doc: header},
		{name: "wrong kind", doc: "apiVersion: v1\nkind: ConfigMap\n", wantErr: []string{"write apiVersion: kubectl-stage.io/v1alpha1 and kind: NetworkConditions"}},
		{name: "unknown site", doc: header + "pairs: [{sites: [europe, mars], lossPercent: 1}]", wantErr: []string{`sites[1] "mars" is not a site: use one of asia, europe, us`}},
		{name: "unknown direction site", doc: header + "pairs: [{from: mars, to: us, lossPercent: 1}]", wantErr: []string{`from "mars" is not a site`}},
		{name: "missing to", doc: header + "pairs: [{from: us, lossPercent: 1}]", wantErr: []string{"to is empty: name a site"}},
		{name: "hub as a site", doc: header + "pairs: [{sites: [hub, us], partition: true}]", wantErr: []string{`"hub": the hub is not a site`, "remove it"}},
		{name: "negative latency", doc: header + "default: {latency: -5ms}", wantErr: []string{`default: latency "-5ms" is negative: a delay is 0 or more`}},
		{name: "latency without unit", doc: header + "default: {latency: '80'}", wantErr: []string{`latency "80" is not a duration: write it with a unit, such as 80ms`}},
		{name: "jitter alone", doc: header + "default: {jitter: 5ms}", wantErr: []string{"jitter varies a latency, give latency too"}},
		{name: "loss above 100", doc: header + "pairs: [{sites: [asia, us], lossPercent: 101}]", wantErr: []string{"pairs[0]: lossPercent 101 is outside 0-100"}},
		{name: "negative loss", doc: header + "default: {lossPercent: -1}", wantErr: []string{"lossPercent -1 is outside 0-100"}},
		{name: "bandwidth without unit", doc: header + "default: {bandwidth: '10'}", wantErr: []string{`bandwidth "10" has no unit: write it in bits per second with kbit, mbit or gbit, such as 10mbit`}},
		{name: "bandwidth in bytes", doc: header + "default: {bandwidth: 10mbps}", wantErr: []string{`unit "mbps" is not one of kbit, mbit, gbit`}},
		{name: "bandwidth too low", doc: header + "default: {bandwidth: 10bit}", wantErr: []string{"below 8kbit"}},
		{name: "sites and direction", doc: header + "pairs: [{sites: [asia, us], from: asia, to: us}]", wantErr: []string{"not both"}},
		{name: "three sites in a pair", doc: header + "pairs: [{sites: [asia, us, europe]}]", wantErr: []string{"name exactly two"}},
		{name: "site with itself", doc: header + "pairs: [{sites: [us, us], lossPercent: 3}]", wantErr: []string{`"us" with itself`}},
		{name: "every error at once", doc: header + "default: {lossPercent: 200}\npairs: [{from: hub, to: us}]", wantErr: []string{"default: lossPercent 200", "pairs[0]: from \"hub\""}},
		{name: "total partition warned", doc: header + "default: {partition: true}", wantWarn: "every site is cut off from every other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			warnings, err := Validate(parse(t, tt.doc), sites)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
			} else if err == nil {
				t.Fatalf("no error, want one with %q", tt.wantErr)
			} else {
				for _, want := range tt.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not contain %q", err, want)
					}
				}
			}
			if got := strings.Join(warnings, "\n"); !strings.Contains(got, tt.wantWarn) || (tt.wantWarn == "" && got != "") {
				t.Errorf("warnings %q, want %q", got, tt.wantWarn)
			}
		})
	}
}

func TestBetween(t *testing.T) {
	d := parse(t, header+`
default: {latency: 20ms, lossPercent: 1}
pairs:
- {sites: [europe, us], latency: 40ms}
- {from: us, to: europe, bandwidth: 5mbit, lossPercent: 0}
`)
	tests := []struct {
		from, to string
		want     string
	}{
		{"asia", "us", "latency 20ms, loss 1%"},
		{"europe", "us", "latency 40ms, loss 1%"},
		{"us", "europe", "latency 40ms, 5mbit"},
		{"us", "us", "-"},
		// A site that joined after the document was written gets the default.
		{"africa", "us", "latency 20ms, loss 1%"},
	}
	for _, tt := range tests {
		if got := d.Between(tt.from, tt.to).String(); got != tt.want {
			t.Errorf("Between(%s, %s) = %q, want %q", tt.from, tt.to, got, tt.want)
		}
	}
}

func TestPartitionAndHeal(t *testing.T) {
	d := parse(t, header+"pairs: [{sites: [asia, us], lossPercent: 3}]")
	d.Partition([]string{"asia"}, nil, sites)
	for _, pair := range [][2]string{{"asia", "europe"}, {"europe", "asia"}, {"asia", "us"}, {"us", "asia"}} {
		if !d.Between(pair[0], pair[1]).Partitioned() {
			t.Errorf("%s -> %s is not partitioned", pair[0], pair[1])
		}
	}
	if d.Between("europe", "us").Partitioned() {
		t.Error("europe -> us is partitioned; only asia was cut off")
	}
	d.Heal()
	want := parse(t, header+"pairs: [{sites: [asia, us], lossPercent: 3}]")
	if !reflect.DeepEqual(d, want) {
		t.Errorf("after heal:\n%+v\nwant the conditions before the partition:\n%+v", d.Pairs, want.Pairs)
	}
}

var nodes = []Node{
	{Name: "eu-1", Site: "europe", OverlayIP: netip.MustParseAddr("10.23.0.2")},
	{Name: "eu-2", Site: "europe", OverlayIP: netip.MustParseAddr("10.23.0.3")},
	{Name: "us-1", Site: "us", OverlayIP: netip.MustParseAddr("10.23.0.5")},
	{Name: "us-2", Site: "us", OverlayIP: netip.MustParseAddr("10.23.0.4")},
	{Name: "asia-1", Site: "asia", OverlayIP: netip.MustParseAddr("10.23.0.6")},
	// A record claiming the hub's address is never classified.
	{Name: "rogue", Site: "asia", OverlayIP: netip.MustParseAddr("10.23.0.1")},
}

func TestRules(t *testing.T) {
	hub := netip.MustParseAddr("10.23.0.1")
	tests := []struct {
		name      string
		doc       string
		netem     bool
		wantNft   string // the nft script; "" for no nft command
		wantTC    []string
		wantPairs []PairStatus
	}{
		{name: "no conditions", doc: header},
		{
			name:  "three continents without netem",
			doc:   header + "default: {latency: 80ms}\npairs:\n- {sites: [europe, us], latency: 40ms, jitter: 5ms, bandwidth: 10mbit}\n- {from: europe, to: asia, lossPercent: 2.5}\n",
			netem: false,
			wantNft: `table inet kubectl-stage-net {
	chain output {
		type filter hook output priority filter; policy accept;
		ip daddr 10.23.0.1 accept
		ip saddr 10.23.0.1 accept
		oifname "wg0" ip daddr { 10.23.0.6 } numgen random mod 10000 < 250 drop comment "europe -> asia"
	}
	chain input {
		type filter hook input priority filter; policy accept;
		ip daddr 10.23.0.1 accept
		ip saddr 10.23.0.1 accept
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		ip daddr 10.23.0.1 accept
		ip saddr 10.23.0.1 accept
		oifname "wg0" ip daddr { 10.23.0.6 } numgen random mod 10000 < 250 drop comment "europe -> asia"
	}
}
`,
			wantTC: []string{
				"tc qdisc add dev wg0 root handle 5354: htb",
				"tc class add dev wg0 parent 5354: classid 5354:1 htb rate 10mbit ceil 10mbit",
				"tc filter add dev wg0 parent 5354: protocol ip prio 1 u32 match ip dst 10.23.0.4/32 flowid 5354:1",
				"tc filter add dev wg0 parent 5354: protocol ip prio 1 u32 match ip dst 10.23.0.5/32 flowid 5354:1",
			},
			wantPairs: []PairStatus{
				{From: "europe", To: "asia", Target: Conditions{Latency: "80ms", LossPercent: ptr.To(2.5)}, Applied: []string{"loss"}, NotApplied: map[string]string{"latency": NetemMissing}},
				{From: "europe", To: "us", Target: Conditions{Latency: "40ms", Jitter: "5ms", Bandwidth: "10mbit"}, Applied: []string{"bandwidth"}, NotApplied: map[string]string{"latency": NetemMissing}},
			},
		},
		{
			name:  "latency with netem",
			doc:   header + "pairs:\n- {sites: [europe, us], latency: 40ms, jitter: 5ms}\n- {sites: [europe, asia], latency: 150ms, bandwidth: 2mbit}\n",
			netem: true,
			wantTC: []string{
				"tc qdisc add dev wg0 root handle 5354: htb",
				"tc class add dev wg0 parent 5354: classid 5354:1 htb rate 2mbit ceil 2mbit",
				"tc qdisc add dev wg0 parent 5354:1 handle 11: netem delay 150ms",
				"tc filter add dev wg0 parent 5354: protocol ip prio 1 u32 match ip dst 10.23.0.6/32 flowid 5354:1",
				"tc class add dev wg0 parent 5354: classid 5354:2 htb rate 10gbit ceil 10gbit",
				"tc qdisc add dev wg0 parent 5354:2 handle 12: netem delay 40ms 5ms",
				"tc filter add dev wg0 parent 5354: protocol ip prio 1 u32 match ip dst 10.23.0.4/32 flowid 5354:2",
				"tc filter add dev wg0 parent 5354: protocol ip prio 1 u32 match ip dst 10.23.0.5/32 flowid 5354:2",
			},
			wantPairs: []PairStatus{
				{From: "europe", To: "asia", Target: Conditions{Latency: "150ms", Bandwidth: "2mbit"}, Applied: []string{"bandwidth", "latency"}},
				{From: "europe", To: "us", Target: Conditions{Latency: "40ms", Jitter: "5ms"}, Applied: []string{"latency"}},
			},
		},
		{
			// The partition was declared by the other side only: this end
			// drops both ways too.
			name: "partition from the other side",
			doc:  header + "pairs: [{from: us, to: europe, partition: true}, {sites: [europe, us], bandwidth: 1mbit}]",
			wantNft: `table inet kubectl-stage-net {
	chain output {
		type filter hook output priority filter; policy accept;
		ip daddr 10.23.0.1 accept
		ip saddr 10.23.0.1 accept
		oifname "wg0" ip daddr { 10.23.0.4, 10.23.0.5 } drop comment "europe -> us"
	}
	chain input {
		type filter hook input priority filter; policy accept;
		ip daddr 10.23.0.1 accept
		ip saddr 10.23.0.1 accept
		iifname "wg0" ip saddr { 10.23.0.4, 10.23.0.5 } drop comment "us -> europe"
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		ip daddr 10.23.0.1 accept
		ip saddr 10.23.0.1 accept
		oifname "wg0" ip daddr { 10.23.0.4, 10.23.0.5 } drop comment "europe -> us"
		iifname "wg0" ip saddr { 10.23.0.4, 10.23.0.5 } drop comment "us -> europe"
	}
}
`,
			wantTC: []string{
				"tc qdisc add dev wg0 root handle 5354: htb",
				"tc class add dev wg0 parent 5354: classid 5354:1 htb rate 1mbit ceil 1mbit",
				"tc filter add dev wg0 parent 5354: protocol ip prio 1 u32 match ip dst 10.23.0.4/32 flowid 5354:1",
				"tc filter add dev wg0 parent 5354: protocol ip prio 1 u32 match ip dst 10.23.0.5/32 flowid 5354:1",
			},
			wantPairs: []PairStatus{{From: "europe", To: "us", Target: Conditions{Bandwidth: "1mbit"}, Applied: []string{"bandwidth"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := Rules(Input{Doc: parse(t, tt.doc), Self: "eu-1", Nodes: nodes, Hub: hub, Device: "wg0", Netem: tt.netem})
			if err != nil {
				t.Fatal(err)
			}
			var nft string
			var tc []string
			for _, c := range plan.Commands {
				if c.Args[0] == "nft" {
					if got := strings.Join(c.Args, " "); got != "nft -f -" {
						t.Errorf("nft command %q, want nft -f -", got)
					}
					nft = c.Stdin
					continue
				}
				tc = append(tc, strings.Join(c.Args, " "))
			}
			if nft != tt.wantNft {
				t.Errorf("nft script:\n%s\nwant:\n%s", nft, tt.wantNft)
			}
			if !reflect.DeepEqual(tc, tt.wantTC) {
				t.Errorf("tc commands:\n%s\nwant:\n%s", strings.Join(tc, "\n"), strings.Join(tt.wantTC, "\n"))
			}
			if !reflect.DeepEqual(plan.Pairs, tt.wantPairs) {
				t.Errorf("pairs:\n%+v\nwant:\n%+v", plan.Pairs, tt.wantPairs)
			}
		})
	}
}

func TestRulesRefusesAnUnknownSelf(t *testing.T) {
	if _, err := Rules(Input{Doc: New(), Self: "nobody", Nodes: nodes}); err == nil || !strings.Contains(err.Error(), `"nobody" is not enrolled`) {
		t.Errorf("err = %v, want the node named as not enrolled", err)
	}
}
