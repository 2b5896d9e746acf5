// Package ociimage builds single-layer container images around a static
// binary and stores them as OCI image-layout tarballs, without a container
// engine. Every byte is a function of the binary and the Spec: fixed
// timestamps, owners and file order, so two builds of the same binary give
// the same digest.
package ociimage

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Epoch is the time stamped on every file and on the image itself: a
// wall-clock time would change the digest on every build.
var Epoch = time.Unix(0, 0).UTC()

// Annotations containerd's importer reads the image's name from
// (`ctr images import` uses the first; the OCI one is the spec's).
const (
	containerdNameAnnotation = "io.containerd.image.name"
	ociRefNameAnnotation     = "org.opencontainers.image.ref.name"
)

// Spec describes one image: a static binary as its only file and entrypoint.
type Spec struct {
	// Ref is the full reference it is tagged with (registry/repository:tag).
	Ref string
	// Binary is the file on this machine that becomes /<its base name>.
	Binary string
	// User is "uid:gid" the entrypoint runs as.
	User string
	// Args are the entrypoint's default arguments (the image's Cmd).
	Args []string
	// HostFiles are files of this machine copied into the image at the same
	// absolute paths, their content read through symbolic links: the tools
	// a binary runs and the libraries they load (see HostExecutables).
	HostFiles []string
	// Labels are the image configuration's labels.
	Labels map[string]string
}

// hostToolsPath is the image's PATH when it carries host tools.
const hostToolsPath = "/usr/sbin:/usr/bin:/sbin:/bin:/"

// Build assembles the image described by spec.
func Build(spec Spec) (v1.Image, error) {
	if _, err := name.NewTag(spec.Ref, name.StrictValidation); err != nil {
		return nil, fmt.Errorf("image reference %q: %w", spec.Ref, err)
	}
	binary, err := os.ReadFile(spec.Binary)
	if err != nil {
		return nil, err
	}
	entrypoint := "/" + filepath.Base(spec.Binary)
	files := map[string][]byte{entrypoint: binary}
	for _, path := range spec.HostFiles {
		if !filepath.IsAbs(path) {
			return nil, fmt.Errorf("host file %q: give an absolute path", path)
		}
		if files[path], err = os.ReadFile(path); err != nil {
			return nil, err
		}
	}
	layerTar, err := filesTar(files)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Created = v1.Time{Time: Epoch}
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Config.Entrypoint = []string{entrypoint}
	cfg.Config.Cmd = spec.Args
	cfg.Config.User = spec.User
	cfg.Config.Labels = spec.Labels
	cfg.Config.Env = []string{"PATH=/"}
	if len(spec.HostFiles) > 0 {
		cfg.Config.Env = []string{"PATH=" + hostToolsPath}
	}
	cfg.History = []v1.History{{Created: v1.Time{Time: Epoch}, CreatedBy: "kubectl-stage hack/image: " + entrypoint}}
	return mutate.ConfigFile(img, cfg)
}

// filesTar is a layer holding files (absolute path to content), with their
// parent directories, in name order: the same files give the same bytes.
func filesTar(files map[string][]byte) ([]byte, error) {
	dirs := map[string]bool{}
	var names []string
	for name := range files {
		names = append(names, name)
		for dir := path.Dir(name); dir != "/"; dir = path.Dir(dir) {
			dirs[dir] = true
		}
	}
	for dir := range dirs {
		names = append(names, dir+"/")
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range names {
		hdr := &tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(name, "/"), Mode: 0o755, ModTime: Epoch, Format: tar.FormatPAX}
		content, isFile := files[name]
		if isFile {
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(content))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(content); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// HostExecutables are the files that let this machine's programs names (as
// found in PATH) run in an image: each program at the path it was found at,
// and every shared library it loads and the dynamic loader, as the loader
// resolves them (ldd). The image then carries the same builds of the tools
// as the machine that made it.
func HostExecutables(names ...string) ([]string, error) {
	seen := map[string]bool{}
	var files []string
	add := func(path string) {
		if !seen[path] {
			seen[path] = true
			files = append(files, path)
		}
	}
	for _, name := range names {
		program, err := exec.LookPath(name)
		if err != nil {
			return nil, fmt.Errorf("%s, which the image carries, is not installed here: %w (install it, e.g. ./hack/install-deps.sh)", name, err)
		}
		add(program)
		out, err := exec.Command("ldd", program).Output()
		if err != nil {
			return nil, fmt.Errorf("ldd %s: %w", program, err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)", or the
			// loader "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vDSO has no file.
			fields := strings.Fields(line)
			switch {
			case len(fields) >= 3 && fields[1] == "=>" && filepath.IsAbs(fields[2]):
				add(fields[2])
			case len(fields) >= 1 && filepath.IsAbs(fields[0]):
				add(fields[0])
			case len(fields) >= 3 && fields[1] == "=>":
				return nil, fmt.Errorf("ldd %s: %s", program, strings.TrimSpace(line))
			}
		}
	}
	sort.Strings(files)
	return files, nil
}

// WriteLayoutTar writes img, named ref, as an OCI image-layout tarball
// (oci-layout, index.json, blobs/sha256/...) that `ctr images import`
// reads, and returns the manifest digest.
func WriteLayoutTar(file, ref string, img v1.Image) (v1.Hash, error) {
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	manifest, err := img.RawManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return v1.Hash{}, err
	}
	configName, err := img.ConfigName()
	if err != nil {
		return v1.Hash{}, err
	}
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return v1.Hash{}, err
	}
	index, err := json.Marshal(v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: types.OCIManifestSchema1, Digest: digest, Size: int64(len(manifest)),
			Annotations: map[string]string{containerdNameAnnotation: tag.Name(), ociRefNameAnnotation: tag.TagStr()},
		}},
	})
	if err != nil {
		return v1.Hash{}, err
	}
	entries := []struct {
		name    string
		content func() ([]byte, error)
	}{
		{"oci-layout", func() ([]byte, error) { return []byte(`{"imageLayoutVersion":"1.0.0"}`), nil }},
		{"index.json", func() ([]byte, error) { return index, nil }},
		{blobPath(digest), func() ([]byte, error) { return manifest, nil }},
		{blobPath(configName), func() ([]byte, error) { return config, nil }},
	}
	layers, err := img.Layers()
	if err != nil {
		return v1.Hash{}, err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return v1.Hash{}, err
		}
		entries = append(entries, struct {
			name    string
			content func() ([]byte, error)
		}{blobPath(d), func() ([]byte, error) {
			rc, err := l.Compressed()
			if err != nil {
				return nil, err
			}
			defer func() { _ = rc.Close() }()
			return io.ReadAll(rc)
		}})
	}

	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return v1.Hash{}, err
	}
	tmp := file + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return v1.Hash{}, err
	}
	defer func() { _ = os.Remove(tmp) }()
	tw := tar.NewWriter(f)
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: Epoch, Format: tar.FormatPAX}); err != nil {
			return v1.Hash{}, err
		}
	}
	for _, e := range entries {
		content, err := e.content()
		if err != nil {
			return v1.Hash{}, fmt.Errorf("%s: %w", e.name, err)
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: 0o644, Size: int64(len(content)), ModTime: Epoch, Format: tar.FormatPAX}); err != nil {
			return v1.Hash{}, err
		}
		if _, err := tw.Write(content); err != nil {
			return v1.Hash{}, err
		}
	}
	if err := tw.Close(); err != nil {
		return v1.Hash{}, err
	}
	if err := f.Close(); err != nil {
		return v1.Hash{}, err
	}
	return digest, os.Rename(tmp, file)
}

func blobPath(h v1.Hash) string { return path.Join("blobs", h.Algorithm, h.Hex) }

// Image is an image read back from a layout tarball, with the name it was
// tagged with.
type Image struct {
	Ref   name.Tag
	Image v1.Image
}

// ReadLayoutTar reads the images of an OCI image-layout tarball written by
// WriteLayoutTar. dir is where it is unpacked (the images read from it).
func ReadLayoutTar(file, dir string) ([]Image, error) {
	if err := untar(file, dir); err != nil {
		return nil, fmt.Errorf("unpacking %s: %w", file, err)
	}
	index, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, err
	}
	manifest, err := index.IndexManifest()
	if err != nil {
		return nil, err
	}
	var images []Image
	for _, desc := range manifest.Manifests {
		ref, err := name.NewTag(desc.Annotations[containerdNameAnnotation], name.StrictValidation)
		if err != nil {
			return nil, fmt.Errorf("%s: manifest %s has no usable %s annotation: %w", file, desc.Digest, containerdNameAnnotation, err)
		}
		img, err := index.Image(desc.Digest)
		if err != nil {
			return nil, err
		}
		images = append(images, Image{Ref: ref, Image: img})
	}
	return images, nil
}

func untar(file, dir string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.Clean("/"+hdr.Name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.Create(target)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("unexpected entry %q (type %c)", hdr.Name, hdr.Typeflag)
		}
	}
}

// Retag moves ref to registry, keeping the repository's last element and the
// tag: ghcr.io/kubectl-stage/gossip:v1 in registry.example.com/team becomes
// registry.example.com/team/gossip:v1.
func Retag(ref name.Tag, registry string) (name.Tag, error) {
	repo := ref.RepositoryStr()
	return name.NewTag(strings.TrimSuffix(registry, "/")+"/"+path.Base(repo)+":"+ref.TagStr(), name.StrictValidation)
}

// Push uploads img as ref with the credentials of `docker login` (or
// another credential helper's); go-containerregistry speaks plain HTTP only
// to registries on loopback or private addresses.
func Push(ref name.Tag, img v1.Image) error {
	return remote.Write(ref, img, remote.WithAuthFromKeychain(authn.DefaultKeychain))
}
