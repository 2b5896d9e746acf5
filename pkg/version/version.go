// Package version reports the build of kubectl-stage. The Makefile sets the
// variables below through -ldflags "-X"; a plain `go build` falls back to
// what the Go toolchain recorded about the module.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at link time by the Makefile (see LDFLAGS there).
var (
	gitVersion   = ""
	gitCommit    = ""
	gitTreeState = ""
	buildDate    = ""
)

// Info is the build information, shaped like k8s.io/apimachinery/pkg/version.Info
// so that `-o json` reads the same as `kubectl version -o json`.
type Info struct {
	GitVersion   string `json:"gitVersion"`
	GitCommit    string `json:"gitCommit"`
	GitTreeState string `json:"gitTreeState"`
	BuildDate    string `json:"buildDate"`
	GoVersion    string `json:"goVersion"`
	Compiler     string `json:"compiler"`
	Platform     string `json:"platform"`
}

// Get returns the build information of the running binary.
func Get() Info {
	info := Info{
		GitVersion:   gitVersion,
		GitCommit:    gitCommit,
		GitTreeState: gitTreeState,
		BuildDate:    buildDate,
		GoVersion:    runtime.Version(),
		Compiler:     runtime.Compiler,
		Platform:     fmt.Sprintf("%s/%s", runtime.GOOS, runtime.GOARCH),
	}
	if info.GitVersion == "" {
		info.GitVersion = "v0.0.0-dev"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.GitVersion = bi.Main.Version
		}
	}
	if info.GitTreeState == "" {
		info.GitTreeState = "unknown"
	}
	return info
}

// String is the one-line form printed by `kubectl stage version`.
func (i Info) String() string {
	return i.GitVersion
}
