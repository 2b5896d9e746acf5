package sites

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"

	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
	cmdutil "github.com/kubectl-stage/kubectl-stage/pkg/cmd/util"
	"github.com/kubectl-stage/kubectl-stage/pkg/site"
)

var now = time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)

func report() *site.Report {
	r := &site.Report{}
	r.Sites.Items = []v1alpha1.Site{
		{ObjectMeta: metav1.ObjectMeta{Name: "osaka", CreationTimestamp: metav1.NewTime(now.Add(-2 * time.Hour))}, Status: v1alpha1.SiteStatus{Nodes: 1}},
		{ObjectMeta: metav1.ObjectMeta{Name: "tokyo", CreationTimestamp: metav1.NewTime(now.Add(-3 * 24 * time.Hour))},
			Status: v1alpha1.SiteStatus{Nodes: 2, Ready: 1, Pods: 3, Apps: map[string]int{"p2p/gossip": 2, "dht/kad": 1}}},
	}
	r.Nodes.Items = []v1alpha1.EnrolledNode{
		{ObjectMeta: metav1.ObjectMeta{Name: "osaka-1", CreationTimestamp: metav1.NewTime(now.Add(-2 * time.Hour))},
			Spec: v1alpha1.EnrolledNodeSpec{Site: "osaka", OverlayIP: "10.23.0.4", VPN: "wireguard", TokenID: "cccccc", Endpoint: "198.18.200.4:51821"},
			Status: v1alpha1.EnrolledNodeStatus{State: v1alpha1.NodeNotJoined, TokenState: v1alpha1.TokenValid,
				CredentialExpires: metav1.NewTime(now.Add(365 * 24 * time.Hour)), TokenExpires: metav1.NewTime(now.Add(22 * time.Hour))}},
		{ObjectMeta: metav1.ObjectMeta{Name: "tokyo-1", CreationTimestamp: metav1.NewTime(now.Add(-3 * 24 * time.Hour))},
			Spec: v1alpha1.EnrolledNodeSpec{Site: "tokyo", OverlayIP: "10.23.0.2", VPN: "openvpn", TokenID: "aaaaaa"},
			Status: v1alpha1.EnrolledNodeStatus{State: v1alpha1.NodeReady, TokenState: v1alpha1.TokenExpired, InternalIP: "10.23.0.2",
				CredentialExpires: metav1.NewTime(now.Add(-time.Minute)), TokenExpires: metav1.NewTime(now.Add(-time.Hour))}},
	}
	return r
}

// withPaths is report() with the overlay's shape and each site's paths.
func withPaths(shape string, paths map[string]map[string]string) *site.Report {
	r := report()
	r.Shape = shape
	for i := range r.Sites.Items {
		r.Sites.Items[i].Status.Paths = paths[r.Sites.Items[i].Name]
	}
	return r
}

func TestTables(t *testing.T) {
	for _, tc := range []struct {
		name   string
		view   view
		output string
		report *site.Report
		want   string
		errOut string
	}{
		{name: "sites", view: sitesView, report: report(), want: "" +
			"SITE    NODES   READY   PODS   AGE\n" +
			"osaka   1       0/1     0      120m\n" +
			"tokyo   2       1/2     3      3d\n"},
		{name: "sites wide", view: sitesView, output: cmdutil.OutputWide, report: report(), want: "" +
			"SITE    NODES   READY   PODS   AGE    APPS                     PATHS\n" +
			"osaka   1       0/1     0      120m   <none>                   <none>\n" +
			"tokyo   2       1/2     3      3d     dht/kad=1,p2p/gossip=2   <none>\n"},
		{name: "sites wide, mesh", view: sitesView, output: cmdutil.OutputWide, report: withPaths("mesh", map[string]map[string]string{
			"osaka": {"tokyo": "direct", "berlin": "relayed", "paris": "direct", "lima": "mixed"}, "tokyo": {"osaka": "direct"}}), want: "" +
			"SITE    NODES   READY   PODS   AGE    APPS                     PATHS\n" +
			"osaka   1       0/1     0      120m   <none>                   direct=paris,tokyo relayed=berlin mixed=lima\n" +
			"tokyo   2       1/2     3      3d     dht/kad=1,p2p/gossip=2   direct=osaka\n"},
		{name: "sites wide, star", view: sitesView, output: cmdutil.OutputWide, report: withPaths("star", map[string]map[string]string{
			"osaka": {"tokyo": "relayed"}, "tokyo": {"osaka": "relayed"}}), want: "" +
			"SITE    NODES   READY   PODS   AGE    APPS                     PATHS\n" +
			"osaka   1       0/1     0      120m   <none>                   <star: via hub>\n" +
			"tokyo   2       1/2     3      3d     dht/kad=1,p2p/gossip=2   <star: via hub>\n"},
		{name: "status", view: nodesView, report: report(), want: "" +
			"NODE      SITE    OVERLAY IP   STATUS      CREDENTIAL EXPIRES   TOKEN\n" +
			"osaka-1   osaka   10.23.0.4    NotJoined   in 365d              expires in 22h\n" +
			"tokyo-1   tokyo   10.23.0.2    Ready       expired              Expired\n"},
		{name: "status wide", view: nodesView, output: cmdutil.OutputWide, report: report(), want: "" +
			"NODE      SITE    OVERLAY IP   STATUS      CREDENTIAL EXPIRES   TOKEN            VPN         INTERNAL IP   TOKEN ID   ENROLLED   ENDPOINT\n" +
			"osaka-1   osaka   10.23.0.4    NotJoined   in 365d              expires in 22h   wireguard   <none>        cccccc     120m ago   198.18.200.4:51821\n" +
			"tokyo-1   tokyo   10.23.0.2    Ready       expired              Expired          openvpn     10.23.0.2     aaaaaa     3d ago     <star: via hub>\n"},
		{name: "no sites", view: sitesView, report: &site.Report{}, errOut: "No sites yet: enroll a node with kubectl stage join SITE --node NAME\n"},
		{name: "no nodes", view: nodesView, report: &site.Report{}, errOut: "No nodes enrolled: enroll one with kubectl stage join SITE --node NAME\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			streams, _, out, errOut := genericiooptions.NewTestIOStreams()
			o := &Options{PrintFlags: cmdutil.NewPrintFlags(true), view: tc.view, now: func() time.Time { return now }, IOStreams: streams}
			o.PrintFlags.OutputFormat = &tc.output
			if err := o.Validate(); err != nil {
				t.Fatal(err)
			}
			w := printers.GetNewTabWriter(out)
			if err := o.view.table(o, tc.report, w); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want || errOut.String() != tc.errOut {
				t.Errorf("table:\n%s\nwant:\n%s\nstderr %q, want %q", out, tc.want, errOut, tc.errOut)
			}
		})
	}
}

func TestEndpointColumn(t *testing.T) {
	for _, tc := range []struct {
		spec v1alpha1.EnrolledNodeSpec
		want string
	}{
		{v1alpha1.EnrolledNodeSpec{VPN: "openvpn"}, "<star: via hub>"},
		{v1alpha1.EnrolledNodeSpec{VPN: "wireguard"}, "<none: via hub>"},
		{v1alpha1.EnrolledNodeSpec{VPN: "wireguard", Endpoint: "203.0.113.7:51820"}, "203.0.113.7:51820"},
		{v1alpha1.EnrolledNodeSpec{VPN: "wireguard", Endpoint: "203.0.113.7:51820", RelayOnly: true}, "203.0.113.7:51820 (relay-only: via hub)"},
	} {
		if got := endpoint(tc.spec); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.spec, got, tc.want)
		}
	}
}
