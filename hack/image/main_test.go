package main

import (
	"bytes"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kubectl-stage/kubectl-stage/hack/image/ociimage"
)

// Two builds into empty folders give byte-identical tarballs, the webhook
// image is the chart's default, and the pushed images keep their digests.
func TestImagesAreReproducibleAndPushable(t *testing.T) {
	root := filepath.Join("..", "..")
	first, err := buildAll(root, t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	second, err := buildAll(root, t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 6 || len(second) != 6 {
		t.Fatalf("built %d and %d images, want 6 each", len(first), len(second))
	}
	for i := range first {
		a, b := first[i], second[i]
		if a.ref != b.ref || a.digest != b.digest {
			t.Errorf("two builds differ: %s %s and %s %s", a.ref, a.digest, b.ref, b.digest)
		}
		da, _ := os.ReadFile(a.file)
		db, _ := os.ReadFile(b.file)
		if !bytes.Equal(da, db) || len(da) == 0 {
			t.Errorf("%s: the tarballs differ (%d and %d bytes)", a.ref, len(da), len(db))
		}
		t.Logf("%s %s (%d bytes)", a.ref, a.digest, len(da))
	}
	wantRefs := []string{"ghcr.io/kubectl-stage/stage-webhook:v0.1.0", "ghcr.io/kubectl-stage/gossip:v1", "ghcr.io/kubectl-stage/gossip:v2", "ghcr.io/kubectl-stage/pause:v0.1.0", "ghcr.io/kubectl-stage/stage-rollout-controller:v0.1.0", "ghcr.io/kubectl-stage/kubectl-stage-agent:v0.1.0"}
	for i, want := range wantRefs {
		if first[i].ref != want {
			t.Errorf("image %d is %s, want %s", i, first[i].ref, want)
		}
	}
	img, err := ociimage.ReadLayoutTar(first[0].file, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img[0].Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65532:65532" || len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != "/stage-webhook" {
		t.Errorf("webhook image runs %v as %q, want /stage-webhook as 65532:65532", cfg.Config.Entrypoint, cfg.Config.User)
	}
	controller, err := ociimage.ReadLayoutTar(first[4].file, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err := controller[0].Image.ConfigFile(); err != nil || cfg.Config.Entrypoint[0] != "/stage-rollout-controller" {
		t.Errorf("rollout controller image: %v, entrypoint %v", err, cfg.Config.Entrypoint)
	}

	checkAgentImage(t, first[5].file)

	// go-containerregistry's registry, in memory on loopback.
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(func() { _ = server.Close() })
	prefix := listener.Addr().String() + "/team"
	if err := pushAll(filepath.Dir(first[0].file), prefix); err != nil {
		t.Fatal(err)
	}
	for _, b := range first {
		tag, err := name.NewTag(b.ref)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := ociimage.Retag(tag, prefix)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Head(ref)
		if err != nil {
			t.Fatalf("%s after push: %v", ref, err)
		}
		if desc.Digest.String() != b.digest {
			t.Errorf("%s has digest %s in the registry, built %s", ref, desc.Digest, b.digest)
		}
	}
}

// checkAgentImage: the node agent's image runs as root, and its nft, tc and
// ip run from the image's own files alone (chroot into its unpacked layer).
func checkAgentImage(t *testing.T, file string) {
	t.Helper()
	imgs, err := ociimage.ReadLayoutTar(file, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := imgs[0].Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "0:0" || cfg.Config.Entrypoint[0] != "/kubectl-stage-agent" || !slices.Equal(cfg.Config.Env, []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin:/"}) {
		t.Errorf("agent image runs %v as %q with %v", cfg.Config.Entrypoint, cfg.Config.User, cfg.Config.Env)
	}
	packages := strings.Split(cfg.Config.Labels[HostPackagesLabel], ",")
	names := map[string]bool{}
	for _, p := range packages {
		name, version, ok := strings.Cut(p, "=")
		if !ok || version == "" {
			t.Errorf("label %s: %q is not PACKAGE=VERSION", HostPackagesLabel, p)
		}
		names[name] = true
	}
	for _, want := range []string{"iproute2", "nftables", "libc6", "libmnl0"} {
		if !names[want] {
			t.Errorf("label %s = %q lacks %s", HostPackagesLabel, cfg.Config.Labels[HostPackagesLabel], want)
		}
	}
	t.Logf("the agent image carries %s", cfg.Config.Labels[HostPackagesLabel])
	if os.Geteuid() != 0 {
		t.Log("not root: the agent image's tools are not run (chroot needs root)")
		return
	}
	rootfs := t.TempDir()
	layers, err := imgs[0].Image.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("agent image layers: %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	untar := exec.Command("tar", "-x", "-C", rootfs)
	untar.Stdin = rc
	if out, err := untar.CombinedOutput(); err != nil {
		t.Fatalf("unpacking the agent image: %v\n%s", err, out)
	}
	for _, tool := range [][]string{{"nft", "--version"}, {"tc", "-V"}, {"ip", "-V"}, {"kubectl-stage-agent", "--help"}} {
		cmd := exec.Command("chroot", append([]string{rootfs, lookIn(rootfs, tool[0])}, tool[1:]...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s in the agent image: %v\n%s", strings.Join(tool, " "), err, out)
		}
	}
}

// lookIn is where the image's PATH finds name.
func lookIn(rootfs, name string) string {
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin", "/"} {
		if _, err := os.Stat(filepath.Join(rootfs, dir, name)); err == nil {
			return filepath.Join(dir, name)
		}
	}
	return name
}
