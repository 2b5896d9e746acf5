package harness

import (
	"crypto/tls"
	"net/http"
	"time"
)

// insecureHTTPClient reads the health endpoints of kube-scheduler and
// kube-controller-manager, which serve with self-signed certificates.
func insecureHTTPClient() *http.Client {
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // loopback health probe only
	}
}
