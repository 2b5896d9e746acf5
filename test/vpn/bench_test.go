package vpn

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

// BenchmarkOverlayThroughput runs iperf3 from a site to the hub twice, over
// the raw veth path and over the OpenVPN tunnel, and reports both and their
// ratio. Run as root: go test -run '^$' -bench Overlay ./test/vpn/
func BenchmarkOverlayThroughput(b *testing.B) {
	for _, backend := range []string{"openvpn", "wireguard"} {
		b.Run(backend, func(b *testing.B) {
			o := setUpBench(b, backend)
			raw := o.iperf(b, "198.18.1.1")
			tunnel := o.iperf(b, "10.23.0.1")
			b.ReportMetric(raw, "raw-Mbit/s")
			b.ReportMetric(tunnel, "overlay-Mbit/s")
			b.ReportMetric(tunnel/raw, "ratio")
		})
	}
}

func (o *overlay) iperf(b *testing.B, server string) float64 {
	b.Helper()
	var out string
	var err error
	// iperf3 -s gives no readiness signal: retry while it is not listening yet.
	_ = poll(10*time.Second, 200*time.Millisecond, func() bool {
		out, err = o.tp.Run(o.site["a-1"], "iperf3", "-c", server, "-t", "3", "-J")
		return err == nil || !strings.Contains(out, "unable to connect")
	})
	if err != nil {
		b.Fatalf("iperf3 to %s: %v\n%s", server, err, out)
	}
	var result struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &result); err != nil {
		b.Fatal(err)
	}
	return result.End.SumReceived.BitsPerSecond / 1e6
}

func setUpBench(b *testing.B, backend string) *overlay {
	o := setUp(b, backend)
	startHub(b, o, backend)
	for _, node := range []string{"a-1"} {
		if out, err := o.bundle(node, "vpn", 30); err != nil {
			b.Fatalf("bundle vpn: %v\n%s", err, out)
		}
	}
	srv, err := harness.StartDaemon("iperf3", "ip", []string{"netns", "exec", o.tp.Hub, "iperf3", "-s"}, filepath.Join(b.TempDir(), "iperf3.log"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Stop)
	return o
}
