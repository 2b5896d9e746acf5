package webhook

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kubectl-stage/kubectl-stage/pkg/mutate"
)

var seedSource = fixedSource{view: mutate.StaticView{
	SiteNames: []string{"frankfurt", "osaka", "tokyo"},
	PeersByApp: map[string][]mutate.Peer{"p2p/gossip": {
		{Name: "gossip-0", Site: "tokyo", HostIP: "10.23.0.2", Ready: true, HostNetwork: true, Port: 7946},
		{Name: "gossip-1", Site: "osaka", HostIP: "10.23.0.3", Ready: true, HostNetwork: true, Port: 7946},
		{Name: "gossip-2", Site: "frankfurt", HostIP: "10.23.0.4", Ready: true, HostNetwork: true, Port: 7946},
		{Name: "gossip-3", Site: "frankfurt", HostIP: "10.23.0.5", Ready: false, HostNetwork: true, Port: 7946},
	}},
}}

func TestSeedEndpoint(t *testing.T) {
	broken := seedSource
	broken.view.Err = errors.New("the webhook has not yet read every peer")
	tests := []struct {
		name     string
		source   ViewSource
		method   string
		target   string
		accept   string
		wantCode int
		wantType string
		wantBody string
	}{
		{"json, other sites first, at the port the peers advertise", seedSource, "GET", "/seeds/p2p/gossip?site=tokyo&key=gossip-9", "", 200, "application/json",
			`{"namespace":"p2p","app":"gossip","site":"tokyo","port":7946,"readyPeers":3,"seeds":[` +
				`{"address":"10.23.0.3:7946","site":"osaka","pod":"gossip-1","node":"node-of-gossip-1"},` +
				`{"address":"10.23.0.4:7946","site":"frankfurt","pod":"gossip-2","node":"node-of-gossip-2"},` +
				`{"address":"10.23.0.2:7946","site":"tokyo","pod":"gossip-0","node":"node-of-gossip-0"}]}` + "\n"},
		{"text by Accept", seedSource, "GET", "/seeds/p2p/gossip?site=osaka&n=2&key=gossip-9", "text/plain", 200, "text/plain; charset=utf-8",
			"10.23.0.2:7946\n10.23.0.4:7946\n"},
		{"text by format, bare IPs", seedSource, "GET", "/seeds/p2p/gossip?site=frankfurt&port=0&format=text", "application/json", 200, "text/plain; charset=utf-8",
			"10.23.0.3\n10.23.0.2\n10.23.0.4\n"},
		{"an app with no ready peer: an empty list", seedSource, "GET", "/seeds/p2p/other", "", 200, "application/json",
			`{"namespace":"p2p","app":"other","port":0,"readyPeers":0,"seeds":[]}` + "\n"},
		{"HEAD has no body", seedSource, "HEAD", "/seeds/p2p/gossip", "", 200, "application/json", ""},
		{"read-only", seedSource, "POST", "/seeds/p2p/gossip", "", 405, "", "the seed endpoint is read-only: use GET\n"},
		{"no app", seedSource, "GET", "/seeds/p2p", "", 400, "", `path "/seeds/p2p": ask for /seeds/NAMESPACE/APP` + "\n"},
		{"bad namespace", seedSource, "GET", "/seeds/P2P/gossip", "", 400, "",
			`namespace "P2P": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')` + "\n"},
		{"bad n", seedSource, "GET", "/seeds/p2p/gossip?n=0", "", 400, "", `n="0": must be a whole number from 1 to 256` + "\n"},
		{"bad port", seedSource, "GET", "/seeds/p2p/gossip?port=http", "", 400, "",
			`port="http": must be a port number 1-65535, 0 for bare IPs, or left out for the port the peers advertise` + "\n"},
		{"bad site", seedSource, "GET", "/seeds/p2p/gossip?site=Tokyo!", "", 400, "",
			`site="Tokyo!" is not a site name (a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')): give the asking peer's STAGE_SITE, or leave it out` + "\n"},
		{"unknown parameter", seedSource, "GET", "/seeds/p2p/gossip?count=3", "", 400, "", `unknown parameter "count": use site, n, port, key or format` + "\n"},
		{"bad format", seedSource, "GET", "/seeds/p2p/gossip?format=xml", "", 400, "", `format="xml": must be json or text` + "\n"},
		{"peers not readable", broken, "GET", "/seeds/p2p/gossip", "", 503, "",
			`cannot read the peers of app "gossip" in namespace "p2p": the webhook has not yet read every peer` + "\n"},
		{"no view", failingSource{seedSource}, "GET", "/seeds/p2p/gossip", "", 503, "", "the node cache is still syncing\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.target, nil)
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			rec := httptest.NewRecorder()
			SeedHandler{Source: tt.source}.ServeHTTP(rec, req)
			if rec.Code != tt.wantCode || rec.Body.String() != tt.wantBody {
				t.Fatalf("= %d %q\nwant %d %q", rec.Code, rec.Body.String(), tt.wantCode, tt.wantBody)
			}
			if tt.wantType != "" && rec.Header().Get("Content-Type") != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", rec.Header().Get("Content-Type"), tt.wantType)
			}
			if tt.wantCode == 503 && rec.Header().Get("Retry-After") != "1" {
				t.Errorf("a 503 without Retry-After: %v", rec.Header())
			}
			if tt.wantCode == 200 && (rec.Header().Get("Cache-Control") != "public, max-age=5" || rec.Header().Get("ETag") == "") {
				t.Errorf("cache headers: %v", rec.Header())
			}
		})
	}
}

// A client holding the current list gets 304 Not Modified; once the list
// changes, the new list.
func TestSeedEndpointETag(t *testing.T) {
	get := func(source ViewSource, etag string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/seeds/p2p/gossip?site=tokyo", nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		rec := httptest.NewRecorder()
		SeedHandler{Source: source}.ServeHTTP(rec, req)
		return rec
	}
	first := get(seedSource, "")
	etag := first.Header().Get("ETag")
	if again := get(seedSource, etag); again.Code != http.StatusNotModified || again.Body.Len() != 0 {
		t.Fatalf("same list: %d %q, want 304 and no body", again.Code, again.Body.String())
	}
	changed := seedSource
	changed.view.PeersByApp = map[string][]mutate.Peer{"p2p/gossip": seedSource.view.PeersByApp["p2p/gossip"][1:]}
	if after := get(changed, etag); after.Code != http.StatusOK || after.Header().Get("ETag") == etag {
		t.Fatalf("changed list: %d, ETag %q (was %q)", after.Code, after.Header().Get("ETag"), etag)
	}
}

func TestValidateSeedURL(t *testing.T) {
	for _, ok := range []string{"", "http://stage-seeds.kubectl-stage-system.svc:8082", "https://10.23.0.1:8082/"} {
		if err := ValidateSeedURL(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"stage-seeds:8082", "ftp://x", "http://x/seeds", "http://x?a=b", "http://"} {
		if err := ValidateSeedURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
