// Package netcond decides the network conditions between sites: the
// versioned document users write (`kubectl stage net apply -f`), its
// validation, the conditions each ordered site pair ends up with, and the
// exact tc and nftables commands one node runs on its overlay interface to
// emulate them. Everything here is a pure function of its inputs; the node
// agent (pkg/agent) runs the commands and the plugin (pkg/cmd/net) stores
// the document.
package netcond

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
)

// The document's type.
const (
	APIVersion = api.Group + "/v1alpha1"
	Kind       = "NetworkConditions"
)

// ConfigMapName is the ConfigMap of api.SystemNamespace holding the
// document under DocumentKey. It holds nothing secret.
const (
	ConfigMapName = "kubectl-stage-net-conditions"
	DocumentKey   = "conditions.yaml"
)

// HubName is how a user might name the hub; it is not a site and refused as one.
const HubName = "hub"

// Conditions are what one direction between two sites suffers. An empty
// field is unset: it takes the value of the less specific entry (default,
// then symmetric pair, then direction), so an override names only what it
// changes; "0ms", "0" or false set a field back to nothing explicitly.
type Conditions struct {
	// Latency is one-way delay added to packets leaving towards the
	// remote site ("80ms"); Jitter varies it ("10ms"). They need sch_netem.
	Latency string `json:"latency,omitempty"`
	Jitter  string `json:"jitter,omitempty"`
	// LossPercent is the share of packets dropped, 0 to 100.
	LossPercent *float64 `json:"lossPercent,omitempty"`
	// Bandwidth caps the rate towards the remote site: "10mbit", "512kbit", "1gbit".
	Bandwidth string `json:"bandwidth,omitempty"`
	// Partition drops everything between the sites (both directions).
	Partition *bool `json:"partition,omitempty"`
}

// Pair is an entry of the document: either Sites (two sites, both
// directions) or From and To (one direction), and the conditions.
type Pair struct {
	Sites      []string `json:"sites,omitempty"`
	From       string   `json:"from,omitempty"`
	To         string   `json:"to,omitempty"`
	Conditions `json:",inline"`
}

// Document is the stored description of every site pair's conditions.
type Document struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Default applies to every pair of distinct sites without an entry,
	// including sites that join later.
	Default Conditions `json:"default,omitempty"`
	Pairs   []Pair     `json:"pairs,omitempty"`
}

// New is an empty document of the current version.
func New() *Document { return &Document{APIVersion: APIVersion, Kind: Kind} }

// IsEmpty says whether the document asks for nothing.
func (c Conditions) IsEmpty() bool { return c == Conditions{} || c.normalized() == Conditions{} }

// normalized drops the explicit zeroes, which mean "nothing".
func (c Conditions) normalized() Conditions {
	if d, err := parseDuration(c.Latency); err == nil && d == 0 {
		c.Latency = ""
	}
	if d, err := parseDuration(c.Jitter); err == nil && d == 0 {
		c.Jitter = ""
	}
	if c.LossPercent != nil && *c.LossPercent == 0 {
		c.LossPercent = nil
	}
	if rate, err := ParseBandwidth(c.Bandwidth); err == nil && rate == 0 {
		c.Bandwidth = ""
	}
	if c.Partition != nil && !*c.Partition {
		c.Partition = nil
	}
	return c
}

// over returns c with every field set in o replaced by o's.
func (c Conditions) over(o Conditions) Conditions {
	if o.Latency != "" {
		c.Latency = o.Latency
	}
	if o.Jitter != "" {
		c.Jitter = o.Jitter
	}
	if o.LossPercent != nil {
		c.LossPercent = o.LossPercent
	}
	if o.Bandwidth != "" {
		c.Bandwidth = o.Bandwidth
	}
	if o.Partition != nil {
		c.Partition = o.Partition
	}
	return c
}

// Partitioned says whether the conditions cut the pair.
func (c Conditions) Partitioned() bool { return c.Partition != nil && *c.Partition }

// String is a short human form: "partition", "latency 80ms±10ms, loss 2%, 10mbit", or "-".
func (c Conditions) String() string {
	c = c.normalized()
	if c.Partitioned() {
		return "partition"
	}
	var parts []string
	if c.Latency != "" {
		l := "latency " + c.Latency
		if c.Jitter != "" {
			l += "±" + c.Jitter
		}
		parts = append(parts, l)
	}
	if c.LossPercent != nil {
		parts = append(parts, "loss "+strconv.FormatFloat(*c.LossPercent, 'f', -1, 64)+"%")
	}
	if c.Bandwidth != "" {
		parts = append(parts, c.Bandwidth)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// Between is what packets from site from to site to suffer: the default,
// then a symmetric entry naming both, then a directional entry, later
// entries of the same kind over earlier ones. Pairs of one site with
// itself have no conditions.
func (d *Document) Between(from, to string) Conditions {
	if d == nil || from == to {
		return Conditions{}
	}
	c := d.Default
	for _, p := range d.Pairs {
		if len(p.Sites) == 2 && (p.Sites[0] == from && p.Sites[1] == to || p.Sites[0] == to && p.Sites[1] == from) {
			c = c.over(p.Conditions)
		}
	}
	for _, p := range d.Pairs {
		if p.From == from && p.To == to {
			c = c.over(p.Conditions)
		}
	}
	return c.normalized()
}

// Validate checks a document against the sites that exist and returns
// warnings about valid but probably unintended documents. Every problem
// is named with its fix; a document with any is not to be stored.
func Validate(d *Document, sites []string) (warnings []string, err error) {
	var errs []error
	if d.APIVersion != APIVersion || d.Kind != Kind {
		errs = append(errs, fmt.Errorf("apiVersion %q, kind %q: write apiVersion: %s and kind: %s", d.APIVersion, d.Kind, APIVersion, Kind))
	}
	if err := validateConditions(d.Default); err != nil {
		errs = append(errs, fmt.Errorf("default: %w", err))
	}
	known := func(field, s string) error {
		switch {
		case s == "":
			return fmt.Errorf("%s is empty: name a site (kubectl stage sites lists them)", field)
		case strings.EqualFold(s, HubName):
			return fmt.Errorf("%s %q: the hub is not a site; traffic to and from the hub is never shaped (the nodes must stay Ready), remove it", field, s)
		case !slices.Contains(sites, s):
			return fmt.Errorf("%s %q is not a site: use one of %s (kubectl stage sites)", field, s, strings.Join(sites, ", "))
		}
		return nil
	}
	for i, p := range d.Pairs {
		prefix := fmt.Sprintf("pairs[%d]", i)
		var names []string
		switch {
		case len(p.Sites) > 0 && (p.From != "" || p.To != ""):
			errs = append(errs, fmt.Errorf("%s: give either sites (both directions) or from and to (one direction), not both", prefix))
			continue
		case len(p.Sites) > 0:
			if len(p.Sites) != 2 {
				errs = append(errs, fmt.Errorf("%s: sites names %d sites: name exactly two (a pair), or use the default for every pair", prefix, len(p.Sites)))
				continue
			}
			names = []string{"sites[0]", p.Sites[0], "sites[1]", p.Sites[1]}
		default:
			names = []string{"from", p.From, "to", p.To}
		}
		for j := 0; j < len(names); j += 2 {
			if err := known(names[j], names[j+1]); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", prefix, err))
			}
		}
		if names[1] == names[3] && names[1] != "" {
			errs = append(errs, fmt.Errorf("%s: %q with itself: conditions apply between two different sites", prefix, names[1]))
		}
		if err := validateConditions(p.Conditions); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", prefix, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(sites) > 1 && everyPairPartitioned(d, sites) {
		warnings = append(warnings, "every site is cut off from every other: only traffic to and from the hub still flows (run `kubectl stage net heal` to end it)")
	}
	return warnings, nil
}

func everyPairPartitioned(d *Document, sites []string) bool {
	for _, a := range sites {
		for _, b := range sites {
			if a != b && !d.Between(a, b).Partitioned() {
				return false
			}
		}
	}
	return true
}

func validateConditions(c Conditions) error {
	var errs []error
	for _, f := range []struct{ name, value string }{{"latency", c.Latency}, {"jitter", c.Jitter}} {
		if f.value == "" {
			continue
		}
		d, err := parseDuration(f.value)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s %q is not a duration: write it with a unit, such as 80ms", f.name, f.value))
		case d < 0:
			errs = append(errs, fmt.Errorf("%s %q is negative: a delay is 0 or more, such as 80ms", f.name, f.value))
		case d > time.Minute:
			errs = append(errs, fmt.Errorf("%s %q is more than a minute: write a delay of at most 60s", f.name, f.value))
		}
	}
	if c.Jitter != "" && c.Latency == "" {
		errs = append(errs, fmt.Errorf("jitter %q without latency: jitter varies a latency, give latency too", c.Jitter))
	}
	if c.LossPercent != nil {
		if l := *c.LossPercent; math.IsNaN(l) || l < 0 || l > 100 {
			errs = append(errs, fmt.Errorf("lossPercent %v is outside 0-100: write a percentage such as 2.5 (use partition: true to drop everything)", l))
		}
	}
	if c.Bandwidth != "" {
		if _, err := ParseBandwidth(c.Bandwidth); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	return time.ParseDuration(s)
}

// bandwidthUnits are tc's rate units in bits per second; bytes-based ones
// (tc's "mbps" means megabytes) are refused to avoid an 8x mistake.
var bandwidthUnits = map[string]uint64{"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}

// ParseBandwidth reads "10mbit" into bits per second.
func ParseBandwidth(s string) (uint64, error) {
	lower := strings.ToLower(strings.TrimSpace(s))
	i := strings.IndexFunc(lower, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i <= 0 {
		if i < 0 {
			return 0, fmt.Errorf("bandwidth %q has no unit: write it in bits per second with kbit, mbit or gbit, such as %smbit", s, lower)
		}
		return 0, fmt.Errorf("bandwidth %q is not a rate: write a number with kbit, mbit or gbit, such as 10mbit", s)
	}
	unit, ok := bandwidthUnits[lower[i:]]
	if !ok {
		return 0, fmt.Errorf("bandwidth %q: unit %q is not one of kbit, mbit, gbit (bits per second; tc's mbps would mean megabytes): write such as 10mbit", s, lower[i:])
	}
	n, err := strconv.ParseFloat(lower[:i], 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bandwidth %q is not a rate: write a number with kbit, mbit or gbit, such as 10mbit", s)
	}
	bits := uint64(n * float64(unit))
	if bits != 0 && bits < 8000 {
		return 0, fmt.Errorf("bandwidth %q is below 8kbit: tc cannot shape slower than that; use partition: true to cut the pair", s)
	}
	return bits, nil
}

// Partition marks every pair between group and others as partitioned (both
// directions); with no others, group is cut from every other site.
func (d *Document) Partition(group, others, sites []string) {
	if len(others) == 0 {
		for _, s := range sites {
			if !slices.Contains(group, s) {
				others = append(others, s)
			}
		}
	}
	yes := true
	for _, a := range group {
		for _, b := range others {
			if a != b {
				d.Pairs = append(d.Pairs, Pair{Sites: []string{a, b}, Conditions: Conditions{Partition: &yes}})
			}
		}
	}
}

// Heal ends every partition and keeps the other conditions; entries left
// with nothing are dropped.
func (d *Document) Heal() {
	d.Default.Partition = nil
	var kept []Pair
	for _, p := range d.Pairs {
		p.Partition = nil
		if p.Conditions != (Conditions{}) {
			kept = append(kept, p)
		}
	}
	d.Pairs = kept
}

// Parse reads a document strictly: an unknown field is an error (a typo
// such as "loss:" must not silently mean nothing).
func Parse(data []byte) (*Document, error) {
	d := &Document{}
	if err := yaml.UnmarshalStrict(data, d); err != nil {
		return nil, fmt.Errorf("not a %s document: %w (see `kubectl stage net apply --help` for an example)", Kind, err)
	}
	return d, nil
}
