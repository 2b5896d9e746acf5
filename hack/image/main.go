// Command image builds the project's container images without a container
// engine: static Go binaries (CGO_ENABLED=0, -trimpath) in single-layer OCI
// images (the node agent's also carries this machine's ip, nft and tc with
// their libraries), written as OCI image-layout tarballs that `ctr images import`
// reads, reproducibly (two builds of one tree give the same digests). With
// -push REGISTRY it uploads those tarballs instead.
//
//	go run ./hack/image -out bin/images
//	go run ./hack/image -out bin/images -push registry.example.com/team
package main

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kubectl-stage/kubectl-stage/hack/image/ociimage"
)

// image is one image the project ships.
type image struct {
	// name is the repository's last element and the tarball's prefix.
	name string
	// pkg is the Go package of its only binary.
	pkg string
	// tag, user: the image's tag and the uid:gid it runs as.
	tag, user string
	// ldflags are added to -s -w.
	ldflags string
	// hostTools are programs of this machine the binary runs, carried with
	// their libraries (ociimage.HostExecutables).
	hostTools []string
}

func main() {
	out := flag.String("out", "bin/images", "where the OCI image-layout tarballs go")
	webhookLDFlags := flag.String("webhook-ldflags", "", "extra -ldflags for the webhook and the rollout controller (version stamping)")
	push := flag.String("push", "", "push the tarballs in -out to this registry prefix (e.g. registry.example.com/team) instead of building")
	flag.Parse()
	var err error
	if *push != "" {
		err = pushAll(*out, *push)
	} else {
		var built []built
		built, err = buildAll(".", *out, *webhookLDFlags)
		for _, b := range built {
			fmt.Printf("%s %s %s\n", b.ref, b.digest, b.file)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

// images are the project's images. The webhook's repository and tag are
// the chart's defaults (values.yaml image.repository, Chart.yaml
// appVersion), so the chart runs what `make image` built.
func images(root, webhookLDFlags string) (registry string, _ []image, _ error) {
	var values struct {
		Image struct{ Repository string } `json:"image"`
	}
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	for file, into := range map[string]any{"values.yaml": &values, "Chart.yaml": &chart} {
		data, err := os.ReadFile(filepath.Join(root, "charts", "kubectl-stage", file))
		if err != nil {
			return "", nil, err
		}
		if err := yaml.Unmarshal(data, into); err != nil {
			return "", nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	registry, webhookName := filepath.Dir(values.Image.Repository), filepath.Base(values.Image.Repository)
	return registry, []image{
		{name: webhookName, pkg: "./webhook/cmd/stage-webhook", tag: chart.AppVersion, user: "65532:65532", ldflags: webhookLDFlags},
		// Two versions of the example, for rollouts (examples/gossip/manifests uses v1).
		{name: "gossip", pkg: "./examples/gossip", tag: "v1", user: "65532:65532", ldflags: "-X main.version=v1"},
		{name: "gossip", pkg: "./examples/gossip", tag: "v2", user: "65532:65532", ldflags: "-X main.version=v2"},
		// The pod sandbox of real nodes (containerd's sandbox_image).
		{name: "pause", pkg: "./hack/image/pause", tag: chart.AppVersion, user: "65535:65535"},
		// The in-cluster rollout runner (the chart's rolloutController).
		{name: "stage-rollout-controller", pkg: "./cmd/stage-rollout-controller", tag: chart.AppVersion, user: "65532:65532", ldflags: webhookLDFlags},
		// The node agent of the chart's DaemonSet (netAgent): it shapes the
		// overlay device with nft, tc and ip, as root with only NET_ADMIN.
		{name: "kubectl-stage-agent", pkg: "./cmd/kubectl-stage-agent", tag: chart.AppVersion, user: "0:0", ldflags: webhookLDFlags, hostTools: []string{"ip", "nft", "tc"}},
	}, nil
}

type built struct{ ref, digest, file string }

// HostPackagesLabel names, on an image carrying host tools, the Debian
// packages its files came from ("iproute2=6.1.0-3,libc6=2.36-9+deb12u9,..."):
// two such images have the same digest exactly when these match too.
const HostPackagesLabel = "io.kubectl-stage.image.host-packages"

// debianPackages is HostPackagesLabel's value for files: the package that
// installed each (dpkg-query -S, which knows a merged-/usr file under one
// of its paths only) and the packages' versions.
func debianPackages(files []string) (string, error) {
	owners := map[string]bool{}
	for _, file := range files {
		real, err := filepath.EvalSymlinks(file)
		if err != nil {
			return "", err
		}
		owner := ""
		for _, candidate := range []string{file, real, strings.TrimPrefix(file, "/usr"), "/usr" + file, strings.TrimPrefix(real, "/usr"), "/usr" + real} {
			out, err := exec.Command("dpkg-query", "-S", candidate).Output()
			if errors.Is(err, exec.ErrNotFound) {
				return "", errors.New("dpkg-query is not installed: the image records the Debian packages of the tools it carries; build it on Debian or Ubuntu")
			}
			if err == nil {
				// "libmnl0:amd64: /usr/lib/x86_64-linux-gnu/libmnl.so.0.2.0"
				owner, _, _ = strings.Cut(strings.SplitN(string(out), "\n", 2)[0], ": ")
				owner, _, _ = strings.Cut(owner, ", ")
				break
			}
		}
		if owner == "" {
			return "", fmt.Errorf("%s belongs to no Debian package (dpkg-query -S): the image carries packaged tools only", file)
		}
		owners[owner] = true
	}
	names := slices.Sorted(maps.Keys(owners))
	out, err := exec.Command("dpkg-query", append([]string{"-W", "-f=${Package}=${Version}\n"}, names...)...).Output()
	if err != nil {
		return "", fmt.Errorf("dpkg-query -W %s: %w", strings.Join(names, " "), err)
	}
	versions := strings.Fields(string(out))
	slices.Sort(versions)
	return strings.Join(versions, ","), nil
}

// buildAll builds every image from the module at root into out.
func buildAll(root, out, webhookLDFlags string) ([]built, error) {
	registry, list, err := images(root, webhookLDFlags)
	if err != nil {
		return nil, err
	}
	bins, err := os.MkdirTemp("", "stage-image-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(bins) }()
	var result []built
	for _, img := range list {
		binary := filepath.Join(bins, img.tag, filepath.Base(img.pkg))
		build := exec.Command("go", "build", "-trimpath", "-ldflags", strings.TrimSpace("-s -w "+img.ldflags), "-o", binary, img.pkg)
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %v\n%s", img.pkg, err, out)
		}
		ref := registry + "/" + img.name + ":" + img.tag
		var hostFiles []string
		var labels map[string]string
		if len(img.hostTools) > 0 {
			if hostFiles, err = ociimage.HostExecutables(img.hostTools...); err != nil {
				return nil, fmt.Errorf("%s: %w", ref, err)
			}
			packages, err := debianPackages(hostFiles)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", ref, err)
			}
			labels = map[string]string{HostPackagesLabel: packages}
		}
		oci, err := ociimage.Build(ociimage.Spec{Ref: ref, Binary: binary, User: img.user, HostFiles: hostFiles, Labels: labels})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		file := filepath.Join(out, img.name+"-"+img.tag+".tar")
		digest, err := ociimage.WriteLayoutTar(file, ref, oci)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		result = append(result, built{ref: ref, digest: digest.String(), file: file})
	}
	return result, nil
}

// pushAll pushes every tarball in dir to registry.
func pushAll(dir, registry string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.tar"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no image tarballs in %s: run make image first", dir)
	}
	unpacked, err := os.MkdirTemp("", "stage-image-push-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(unpacked) }()
	for i, file := range files {
		imgs, err := ociimage.ReadLayoutTar(file, filepath.Join(unpacked, fmt.Sprint(i)))
		if err != nil {
			return err
		}
		for _, img := range imgs {
			ref, err := ociimage.Retag(img.Ref, registry)
			if err != nil {
				return err
			}
			if err := ociimage.Push(ref, img.Image); err != nil {
				return fmt.Errorf("pushing %s: %w", ref, err)
			}
			digest, _ := img.Image.Digest()
			fmt.Printf("pushed %s@%s\n", ref, digest)
		}
	}
	return nil
}
