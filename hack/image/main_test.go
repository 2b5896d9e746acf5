package main

import (
	"bytes"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
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
	if len(first) != 5 || len(second) != 5 {
		t.Fatalf("built %d and %d images, want 5 each", len(first), len(second))
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
	wantRefs := []string{"ghcr.io/kubectl-stage/stage-webhook:v0.1.0", "ghcr.io/kubectl-stage/gossip:v1", "ghcr.io/kubectl-stage/gossip:v2", "ghcr.io/kubectl-stage/pause:v0.1.0", "ghcr.io/kubectl-stage/stage-rollout-controller:v0.1.0"}
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
