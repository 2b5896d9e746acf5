package enrollment

import (
	"context"
	"fmt"
	"testing"

	"github.com/kubectl-stage/kubectl-stage/pkg/enroll"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

// BenchmarkJoin measures one complete join (permission preflight, address
// allocation, credentials, bootstrap token, bundle) against the real local
// API server.
func BenchmarkJoin(b *testing.B) {
	ctx := context.Background()
	cp := harness.StartForTest(b, harness.Options{})
	if err := cp.KubeadmBootstrap(ctx); err != nil {
		b.Fatal(err)
	}
	e := enroll.New(cp.Client, nil)
	if _, err := e.Init(ctx, enroll.InitOptions{
		OverlayCIDR: "10.23.0.0/16", HubEndpoint: "198.18.0.1", VPN: "openvpn",
		TokenTTL: 3600e9, CredentialValidity: 3600e9,
	}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.Join(ctx, enroll.JoinOptions{Site: "bench", Node: fmt.Sprintf("bench-%d", i)}); err != nil {
			b.Fatal(err)
		}
	}
}
