// Package release checks what a release ships: krew.yaml is a valid krew
// manifest whose checksums are those of the archives `make dist` builds
// from these sources (so the build is reproducible), and the archives hold
// what krew installs.
package release

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

// plugin is the part of krew's Plugin (v1alpha2) a manifest must fill.
type plugin struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string     `json:"version"`
		Homepage         string     `json:"homepage"`
		ShortDescription string     `json:"shortDescription"`
		Description      string     `json:"description"`
		Caveats          string     `json:"caveats"`
		Platforms        []platform `json:"platforms"`
	} `json:"spec"`
}

type platform struct {
	Selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	} `json:"selector"`
	URI    string `json:"uri"`
	SHA256 string `json:"sha256"`
	Bin    string `json:"bin"`
	Files  []struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"files"`
}

var wantPlatforms = []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64", "windows/amd64", "windows/arm64"}

func releaseEnv(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(harness.RepoRoot(), "hack", "release.env"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	env := map[string]string{}
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		if k, v, ok := strings.Cut(scanner.Text(), "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	return env
}

func readManifest(t *testing.T) plugin {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "krew.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var p plugin
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		t.Fatalf("krew.yaml: %v", err)
	}
	return p
}

// TestKrewManifestIsValid applies krew's rules for a plugin manifest.
func TestKrewManifestIsValid(t *testing.T) {
	p := readManifest(t)
	release := releaseEnv(t)
	semver := regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`)
	switch {
	case p.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || p.Kind != "Plugin":
		t.Errorf("apiVersion/kind = %s/%s", p.APIVersion, p.Kind)
	case p.Metadata.Name != "stage":
		t.Errorf("name %q: the binary is kubectl-stage, so the plugin is stage", p.Metadata.Name)
	case !semver.MatchString(p.Spec.Version) || p.Spec.Version != release["RELEASE_VERSION"]:
		t.Errorf("version %q, want the semver release %q", p.Spec.Version, release["RELEASE_VERSION"])
	case !strings.HasPrefix(p.Spec.Homepage, "https://"):
		t.Errorf("homepage %q", p.Spec.Homepage)
	case p.Spec.ShortDescription == "" || len(p.Spec.ShortDescription) > 50:
		t.Errorf("shortDescription %q must be 1-50 characters", p.Spec.ShortDescription)
	case p.Spec.Description == "" || p.Spec.Caveats == "":
		t.Error("description and caveats are required")
	}
	seen := map[string]bool{}
	hexSum := regexp.MustCompile(`^[0-9a-f]{64}$`)
	for _, pl := range p.Spec.Platforms {
		os, arch := pl.Selector.MatchLabels["os"], pl.Selector.MatchLabels["arch"]
		key := os + "/" + arch
		if seen[key] {
			t.Errorf("platform %s twice", key)
		}
		seen[key] = true
		wantBin := "kubectl-stage"
		if os == "windows" {
			wantBin += ".exe"
		}
		archive := fmt.Sprintf("kubectl-stage_%s_%s_%s.tar.gz", p.Spec.Version, os, arch)
		if !strings.HasPrefix(pl.URI, "https://") || !strings.HasSuffix(pl.URI, "/"+p.Spec.Version+"/"+archive) {
			t.Errorf("%s: uri %s, want https://.../%s/%s", key, pl.URI, p.Spec.Version, archive)
		}
		if !hexSum.MatchString(pl.SHA256) {
			t.Errorf("%s: sha256 %q", key, pl.SHA256)
		}
		if pl.Bin != wantBin {
			t.Errorf("%s: bin %q, want %q", key, pl.Bin, wantBin)
		}
		var from []string
		for _, f := range pl.Files {
			from = append(from, f.From)
		}
		if !strings.Contains(strings.Join(from, " "), wantBin) || !strings.Contains(strings.Join(from, " "), "LICENSE") {
			t.Errorf("%s: files %v must install %s and LICENSE", key, from, wantBin)
		}
	}
	for _, want := range wantPlatforms {
		if !seen[want] {
			t.Errorf("no platform %s", want)
		}
	}
}

// allPlatformsEnv asks the release test to cross-build every platform
// (`make release-check`); by default it builds the host's only, since a
// cold cross-build of the other five costs CI about 20 minutes.
const allPlatformsEnv = "STAGE_RELEASE_ALL_PLATFORMS"

// TestKrewChecksumsMatchTheArchives rebuilds the plugin archives as
// `make dist` does and compares them with krew.yaml, byte for byte; then
// checks each archive holds what krew installs, and that the host's binary
// reports the release's version.
func TestKrewChecksumsMatchTheArchives(t *testing.T) {
	dist := t.TempDir()
	host := runtime.GOOS + "/" + runtime.GOARCH
	all := os.Getenv(allPlatformsEnv) == "1"
	cmd := exec.Command(filepath.Join(harness.RepoRoot(), "hack", "dist.sh"), "plugin")
	cmd.Env = append(os.Environ(), "DIST_DIR="+dist)
	if !all {
		cmd.Env = append(cmd.Env, "PLATFORMS="+host)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/dist.sh plugin: %v\n%s", err, out)
	}
	p := readManifest(t)
	for _, pl := range p.Spec.Platforms {
		goos, arch := pl.Selector.MatchLabels["os"], pl.Selector.MatchLabels["arch"]
		if !all && goos+"/"+arch != host {
			t.Logf("%s/%s: not rebuilt (%s=1 or make release-check rebuilds every platform)", goos, arch, allPlatformsEnv)
			continue
		}
		path := filepath.Join(dist, filepath.Base(pl.URI))
		data, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s/%s: %v", goos, arch, err)
			continue
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != pl.SHA256 {
			t.Errorf("%s/%s: the archive built from these sources has sha256 %s, krew.yaml says %s: run make krew", goos, arch, got, pl.SHA256)
		}
		files := untar(t, path, filepath.Join(dist, goos+"-"+arch))
		if !files[pl.Bin] || !files["LICENSE"] {
			t.Errorf("%s/%s: archive holds %v, want %s and LICENSE", goos, arch, files, pl.Bin)
		}
		if goos == runtime.GOOS && arch == runtime.GOARCH {
			krewInstall(t, path, p.Spec.Version)
		}
	}
}

// krewInstall installs the plugin with the real krew from krew.yaml and the
// archive (krew validates the manifest and checks the sha256), then runs
// the installed kubectl-stage.
func krewInstall(t *testing.T, archive, version string) {
	t.Helper()
	tools, err := harness.FindTools()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	install := exec.Command(tools.Krew, "install", "--manifest="+filepath.Join(harness.RepoRoot(), "krew.yaml"), "--archive="+archive)
	install.Env = append(os.Environ(), "KREW_ROOT="+root)
	if out, err := install.CombinedOutput(); err != nil || !strings.Contains(string(out), "Installed plugin: stage") {
		t.Fatalf("krew install: %v\n%s", err, out)
	}
	out, err := exec.Command(filepath.Join(root, "bin", "kubectl-stage"), "version", "-o", "json").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"gitVersion": "`+version+`"`) {
		t.Errorf("the plugin krew installed: %v\n%s", err, out)
	}
}

// untar extracts a .tar.gz into dir and lists its regular files; modes must
// be normalised (0755 binaries, 0644 others) and owners root.
func untar(t *testing.T, archive, dir string) map[string]bool {
	t.Helper()
	files := map[string]bool{}
	for _, f := range harness.ReadTarGz(t, archive) {
		hdr := f.Header
		files[hdr.Name] = true
		if hdr.Uid != 0 || hdr.Gid != 0 || (hdr.Mode != 0o755 && hdr.Mode != 0o644) {
			t.Errorf("%s in %s: uid %d gid %d mode %o", hdr.Name, filepath.Base(archive), hdr.Uid, hdr.Gid, hdr.Mode)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(hdr.Name)), f.Data, os.FileMode(hdr.Mode)); err != nil {
			t.Fatal(err)
		}
	}
	return files
}
