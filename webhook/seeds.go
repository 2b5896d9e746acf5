package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/util/validation"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/kubectl-stage/kubectl-stage/pkg/mutate"
)

// Seed endpoint defaults and bounds.
const (
	defaultSeedCount = 10
	maxSeedCount     = 256
	// seedMaxAge is how long a client may reuse an answer: short, since the
	// list follows the peers within a second, long enough that a thousand
	// peers restarting at once ask the webhook a few times each, not
	// hundreds.
	seedMaxAge = 5 * time.Second
)

// SeedList is the JSON answer of the seed endpoint.
type SeedList struct {
	Namespace string `json:"namespace"`
	App       string `json:"app"`
	// Site is the asker's site, whose peers come last ("" for none).
	Site string `json:"site,omitempty"`
	// Port is the port every seed answers at (0: the IP alone).
	Port int `json:"port"`
	// ReadyPeers is how many ready peers the app has, listed or not.
	ReadyPeers int           `json:"readyPeers"`
	Seeds      []mutate.Seed `json:"seeds"`
}

// SeedHandler serves GET /seeds/NAMESPACE/APP?site=S&n=N&port=P&key=K: up to
// N of the app's ready peers at port P (default: the port its peers
// advertise), other sites than S first, spread over sites and chosen by K
// (the asker's name), as JSON, or as one address a line with Accept:
// text/plain or format=text. It reads only the webhook's index of peers:
// addresses the peers advertise anyway, nothing else.
type SeedHandler struct{ Source ViewSource }

var seedRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "kubectl_stage_seed_requests_total",
	Help: "Seed endpoint requests by HTTP status code.",
}, []string{"code"})

func init() { ctrlmetrics.Registry.MustRegister(seedRequests) }

func (h SeedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	code := h.serve(w, r)
	seedRequests.WithLabelValues(strconv.Itoa(code)).Inc()
}

func (h SeedHandler) serve(w http.ResponseWriter, r *http.Request) int {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return fail(w, http.StatusMethodNotAllowed, "the seed endpoint is read-only: use GET")
	}
	q, text, err := parseSeedRequest(r)
	if err != nil {
		return fail(w, http.StatusBadRequest, err.Error())
	}
	view, err := h.Source.View(r.Context())
	if err != nil {
		w.Header().Set("Retry-After", "1")
		return fail(w, http.StatusServiceUnavailable, err.Error())
	}
	list := SeedList{Namespace: q.namespace, App: q.app, Site: q.Site, Seeds: []mutate.Seed{}}
	if err := view.Peers(q.namespace, q.app, func(peers *mutate.ReadyPeers) {
		if !q.portGiven {
			q.Port = peers.AdvertisedPort()
		}
		list.Port, list.ReadyPeers = q.Port, peers.Len()
		list.Seeds = append(list.Seeds, mutate.SeedsFor(peers, q.SeedQuery)...)
	}); err != nil {
		w.Header().Set("Retry-After", "1")
		return fail(w, http.StatusServiceUnavailable, fmt.Sprintf("cannot read the peers of app %q in namespace %q: %v", q.app, q.namespace, err))
	}
	var body []byte
	if text {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		for _, s := range list.Seeds {
			body = append(body, s.Address+"\n"...)
		}
	} else {
		w.Header().Set("Content-Type", "application/json")
		if body, err = json.Marshal(list); err != nil {
			return fail(w, http.StatusInternalServerError, err.Error())
		}
		body = append(body, '\n')
	}
	etag := fmt.Sprintf(`"%x"`, fnvSum(body))
	w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(seedMaxAge.Seconds())))
	w.Header().Set("ETag", etag)
	w.Header().Set("Vary", "Accept")
	if match := r.Header.Get("If-None-Match"); match != "" && (match == etag || match == "*") {
		w.WriteHeader(http.StatusNotModified)
		return http.StatusNotModified
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
	return http.StatusOK
}

type seedRequest struct {
	mutate.SeedQuery
	namespace, app string
	portGiven      bool
}

// parseSeedRequest reads the path and query; every error names the fix.
func parseSeedRequest(r *http.Request) (seedRequest, bool, error) {
	q := seedRequest{SeedQuery: mutate.SeedQuery{N: defaultSeedCount}}
	rest, ok := strings.CutPrefix(r.URL.Path, mutate.SeedPath)
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return q, false, fmt.Errorf("path %q: ask for %sNAMESPACE/APP", r.URL.Path, mutate.SeedPath)
	}
	q.namespace, q.app = parts[0], parts[1]
	if errs := validation.IsDNS1123Label(q.namespace); len(errs) > 0 {
		return q, false, fmt.Errorf("namespace %q: %s", q.namespace, strings.Join(errs, "; "))
	}
	if errs := validation.IsValidLabelValue(q.app); len(errs) > 0 {
		return q, false, fmt.Errorf("app %q (the value of the pods' label app.kubernetes.io/name or app): %s", q.app, strings.Join(errs, "; "))
	}
	values := r.URL.Query()
	for name := range values {
		switch name {
		case "site", "n", "port", "key", "format":
		default:
			return q, false, fmt.Errorf("unknown parameter %q: use site, n, port, key or format", name)
		}
	}
	if q.Site = values.Get("site"); q.Site != "" {
		if errs := validation.IsDNS1123Label(q.Site); len(errs) > 0 {
			return q, false, fmt.Errorf("site=%q is not a site name (%s): give the asking peer's STAGE_SITE, or leave it out", q.Site, strings.Join(errs, "; "))
		}
	}
	if v := values.Get("n"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxSeedCount {
			return q, false, fmt.Errorf("n=%q: must be a whole number from 1 to %d", v, maxSeedCount)
		}
		q.N = n
	}
	if v := values.Get("port"); v != "" {
		port, err := strconv.Atoi(v)
		if err != nil || port < 0 || port > 65535 {
			return q, false, fmt.Errorf("port=%q: must be a port number 1-65535, 0 for bare IPs, or left out for the port the peers advertise", v)
		}
		q.Port, q.portGiven = port, true
	}
	q.Key = values.Get("key")
	if len(q.Key) > validation.DNS1123SubdomainMaxLength {
		return q, false, fmt.Errorf("key: at most %d characters (the asking pod's name)", validation.DNS1123SubdomainMaxLength)
	}
	switch format := values.Get("format"); format {
	case "text":
		return q, true, nil
	case "json":
		return q, false, nil
	case "":
		accept := r.Header.Get("Accept")
		return q, strings.Contains(accept, "text/plain") && !strings.Contains(accept, "application/json"), nil
	default:
		return q, false, fmt.Errorf("format=%q: must be json or text", format)
	}
}

func fail(w http.ResponseWriter, code int, message string) int {
	http.Error(w, message, code)
	return code
}

func fnvSum(b []byte) uint64 {
	h := fnv.New64a()
	_, _ = h.Write(b)
	return h.Sum64()
}

// seedServer serves the seed endpoint on addr until ctx ends; a manager
// runnable.
func seedServer(addr string, source ViewSource) func(context.Context) error {
	return func(ctx context.Context) error {
		mux := http.NewServeMux()
		mux.Handle(mutate.SeedPath, SeedHandler{Source: source})
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("the seed endpoint cannot listen on %s: %w", addr, err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ln) }()
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
		}
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdown); err != nil {
			return err
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}

// ValidateSeedURL checks a value of --seed-url: an absolute http(s) URL
// with no path beyond "/", query or fragment.
func ValidateSeedURL(v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("--seed-url=%q: must be the seed endpoint's base URL as peers reach it, such as http://stage-seeds.kubectl-stage-system.svc:8082", v)
	}
	return nil
}

// AddressesOf are the list's addresses, in order (what format=text gives).
func AddressesOf(l SeedList) []string { return mutate.Addresses(l.Seeds) }
