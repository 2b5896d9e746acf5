package observe_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
	"github.com/kubectl-stage/kubectl-stage/pkg/collect"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

// readRecord reads a .tar.gz record into a map of path to content, and
// checks that every file is 0600.
func readRecord(t *testing.T, path string) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, f := range harness.ReadTarGz(t, path) {
		if f.Header.Typeflag != tar.TypeReg {
			continue
		}
		if f.Header.Mode != 0o600 {
			t.Errorf("%s has mode %o, want 0600", f.Header.Name, f.Header.Mode)
		}
		files[f.Header.Name] = string(f.Data)
	}
	return files
}

// TestCollect writes the record of an enrolled staging cluster with the
// gossip app: everything the manifest lists is there, what cannot be read
// (kwok serves no logs) is listed as a problem, and no byte of any Secret
// in the cluster (VPN keys, bootstrap tokens, the app's own) is in it.
func TestCollect(t *testing.T) {
	ctx := context.Background()
	p := startPeers(t)
	dir := t.TempDir()
	if err := p.cp.KubeadmBootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"init", "--hub-endpoint", "198.18.0.1", "--skip-apiserver-cert-check"},
		{"join", "tokyo", "--node", "tokyo-2", "-f", filepath.Join(dir, "tokyo-2.join.sh")},
	} {
		if out, err := p.stage(args...); err != nil {
			t.Fatalf("kubectl stage %v: %v\n%s", args, err, out)
		}
	}
	// A Secret of the app's own, next to its pods.
	appSecret := []byte("app-secret-" + base64.StdEncoding.EncodeToString([]byte(t.Name())))
	if _, err := p.cp.Client.CoreV1().Secrets("p2p").Create(ctx, secret("gossip-key", appSecret), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The graph is part of the record: wait until the peers know each other.
	if err := wait.PollUntilContextTimeout(ctx, 300*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		out, _ := p.stage("graph", "gossip", "-n", "p2p")
		return strings.Contains(out, "1 connected component; 6 links"), nil
	}); err != nil {
		t.Fatal("the peers never all knew each other")
	}

	path := filepath.Join(dir, "record.tar.gz")
	out, err := p.stage("collect", "gossip", "-n", "p2p", "-o", path)
	if err != nil {
		t.Fatal(err)
	}
	files := readRecord(t, path)
	var manifest collect.Manifest
	if err := yaml.UnmarshalStrict([]byte(files["manifest.yaml"]), &manifest); err != nil {
		t.Fatalf("manifest.yaml: %v\n%s", err, files["manifest.yaml"])
	}
	var listed []string
	for _, f := range manifest.Files {
		listed = append(listed, f.Path)
		if got := len(files[f.Path]); got != f.Bytes {
			t.Errorf("%s: %d bytes in the record, the manifest says %d", f.Path, got, f.Bytes)
		}
	}
	wantFiles := []string{"sites.yaml", "enrolled-nodes.yaml", "nodes.yaml", "webhook/mutatingwebhookconfigurations.yaml", "webhook/deployments.yaml",
		"app/pods.yaml", "app/events.yaml", "app/graph.yaml"}
	if !slices.Equal(listed, wantFiles) || len(files) != len(wantFiles)+1 {
		t.Errorf("the manifest lists %v, want %v; the record holds %d files", listed, wantFiles, len(files))
	}
	// kwok serves no logs: each container's log is a listed problem.
	var problems []string
	for _, pr := range manifest.Problems {
		problems = append(problems, pr.What)
	}
	if want := []string{"log of gossip-0/gossip", "log of gossip-1/gossip", "log of gossip-2/gossip"}; !slices.Equal(problems, want) {
		t.Errorf("problems %v, want %v", problems, want)
	}
	if want := "wrote 9 files to " + path + " (3 not collected: see manifest.yaml)\n"; out != want {
		t.Errorf("collect printed %q, want %q", out, want)
	}
	var graph v1alpha1.PeerGraph
	if err := yaml.Unmarshal([]byte(files["app/graph.yaml"]), &graph); err != nil || graph.Kind != "PeerGraph" || graph.Summary.Components != 1 || graph.Summary.Links != 6 {
		t.Errorf("app/graph.yaml: %v\n%s", err, files["app/graph.yaml"])
	}
	var sites v1alpha1.SiteList
	// Sites with a node enrolled (tokyo-2, by join) or with pods running.
	if err := yaml.Unmarshal([]byte(files["sites.yaml"]), &sites); err != nil || len(sites.Items) != 3 || sites.Items[2].Name != "tokyo" || sites.Items[2].Status.Nodes != 1 ||
		sites.Items[2].Kind != "Site" || sites.Items[0].Status.Pods != 1 {
		t.Errorf("sites.yaml: %v\n%s", err, files["sites.yaml"])
	}
	for _, name := range []string{"gossip-0", "gossip-1", "gossip-2"} {
		if !strings.Contains(files["app/pods.yaml"], "name: "+name+"\n") {
			t.Errorf("app/pods.yaml lacks %s", name)
		}
	}

	// No Secret of the cluster, in any form, is in the record.
	all, err := p.cp.Client.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Public by design: a bootstrap token's ID, expiry and usages, and
	// certificates (the webhook's CA is in its registration).
	public := []string{"token-id", "expiration", "description", "auth-extra-groups", "usage-bootstrap-authentication", "usage-bootstrap-signing", "ca.crt", "tls.crt"}
	checked := 0
	for _, s := range all.Items {
		for key, value := range s.Data {
			if len(value) < 6 || slices.Contains(public, key) || strings.HasSuffix(key, ".crt") {
				continue
			}
			checked++
			for path, content := range files {
				for _, form := range [][]byte{value, []byte(base64.StdEncoding.EncodeToString(value))} {
					if bytes.Contains([]byte(content), form) {
						t.Errorf("%s holds %s/%s's %s", path, s.Namespace, s.Name, key)
					}
				}
			}
		}
	}
	if checked < 5 {
		t.Fatalf("only %d Secret values to look for: the test proves little", checked)
	}

	// An existing path is never overwritten; a directory record is the same.
	if _, err := p.stage("collect", "gossip", "-n", "p2p", "-o", path); err == nil || err.Error() != path+" already exists: give a new directory or FILE.tar.gz with -o" {
		t.Errorf("collect onto an existing record: %v", err)
	}
	recordDir := filepath.Join(dir, "record")
	if _, err := p.stage("collect", "-o", recordDir); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(recordDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"enrolled-nodes.yaml", "manifest.yaml", "nodes.yaml", "sites.yaml", "webhook"}; !slices.Equal(names, want) {
		t.Errorf("a record without an app holds %v, want %v", names, want)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*partial*")); len(leftovers) > 0 {
		t.Errorf("partial records left behind: %v", leftovers)
	}
}

func secret(name string, value []byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string][]byte{"key": value}}
}
