package mutate

import (
	"fmt"
	"hash/fnv"
	"net/url"
	"slices"
	"strconv"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
)

// SeedPath is where the seed endpoint serves an app's seeds:
// SeedPath + "NAMESPACE/APP".
const SeedPath = "/seeds/"

// SeedQuery is whose seeds to choose, and how many.
type SeedQuery struct {
	// Key makes the choice the asker's own (a pod's name): the same key
	// gets the same seeds, different keys spread over all the peers.
	Key string
	// Self is a peer never listed (the asking pod), "" for none.
	Self string
	// Site is the asker's site: its peers come last ("" for none).
	Site string
	// Port is the port the seeds must answer at (0: their IP alone, which
	// only peers on the host network do).
	Port int
	// N is the most seeds to choose.
	N int
}

// Seed is a chosen peer.
type Seed struct {
	Address string `json:"address"`
	Site    string `json:"site"`
	Pod     string `json:"pod"`
	Node    string `json:"node"`
}

// SeedsFor picks up to q.N ready peers that their address reaches,
// round-robin over the other sites so seeds come from as many sites as
// possible, and only then from the asker's own site. An address is listed once, however many peers
// share it, and q.Self never.
//
// The choice is the asker's own (a hash of q.Key): it starts the round at
// one of the other sites and each site's run of peers at one of its peers,
// so that askers spread over all the peers instead of all seeding from the
// same few, and the same asker in the same cluster gets the same seeds. It
// costs O(sites + seeds) (plus a peer skipped for its address), however
// many peers there are.
func SeedsFor(peers *ReadyPeers, q SeedQuery) []Seed {
	if q.N <= 0 {
		return nil
	}
	type run struct {
		candidates   Candidates
		start, taken int
	}
	var runs, own []run
	for _, site := range peers.Sites() {
		c := peers.Reachable(site, q.Port)
		if c.Len() == 0 {
			continue
		}
		r := run{candidates: c, start: int(hash(q.Key, site) % uint64(c.Len()))}
		if site == q.Site {
			own = append(own, r)
		} else {
			runs = append(runs, r)
		}
	}
	if len(runs) > 0 {
		// "/" is in no site name: the rotation is not a site's start.
		first := int(hash(q.Key, "/") % uint64(len(runs)))
		runs = slices.Concat(runs[first:], runs[:first])
	}
	var seeds []Seed
	listed := map[string]bool{}
	// The other sites in turns, then the asker's own.
	for _, phase := range [][]run{runs, own} {
		for len(seeds) < q.N {
			added := false
			for i := range phase {
				r := &phase[i]
				for r.taken < r.candidates.Len() && len(seeds) < q.N {
					p := r.candidates.At((r.start + r.taken) % r.candidates.Len())
					r.taken++
					addr := address(p.HostIP, q.Port)
					if p.Name == q.Self || listed[addr] {
						continue
					}
					listed[addr] = true
					seeds = append(seeds, Seed{Address: addr, Site: p.Site, Pod: p.Name, Node: p.Node})
					added = true
					break
				}
			}
			if !added {
				break
			}
		}
	}
	return seeds
}

// Addresses are the seeds' addresses, in order.
func Addresses(seeds []Seed) []string {
	addrs := make([]string, len(seeds))
	for i, s := range seeds {
		addrs[i] = s.Address
	}
	return addrs
}

// hash is FNV-1a of key and site: an asker's own, stable choice among peers.
func hash(key, site string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(site))
	return h.Sum64()
}

// SeedURL is the STAGE_SEED_URL of a pod of app in namespace: the seed
// endpoint at base, asked for peers at other sites than the pod's, at the
// pod's port, chosen by its name. $(VAR) are the variables injected before
// it, which the kubelet expands when the container starts.
func SeedURL(base, namespace, app string, port int) string {
	query := "site=$(" + api.EnvSite + ")"
	if port != 0 {
		query += "&port=" + strconv.Itoa(port)
	}
	query += "&key=$(" + api.EnvPodName + ")"
	return fmt.Sprintf("%s%s%s/%s?%s", base, SeedPath, url.PathEscape(namespace), url.PathEscape(app), query)
}
