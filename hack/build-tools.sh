#!/usr/bin/env bash
# Builds the Kubernetes binaries the tests run (kube-apiserver,
# kube-scheduler, kube-controller-manager, kubectl, and for real nodes kubeadm
# and the kubelet, from k8s.io/kubernetes),
# and kwok, plus the Helm CLI for chart tests)
# into a cache folder keyed by version, and reuses what is already there.
# Nothing is downloaded but Go modules.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
k8s_version=$(grep -m1 -oE '^require k8s.io/kubernetes v[0-9.]+' "$root/hack/tools/go.mod" | awk '{print $3}')
kwok_version=$(tr -d "[:space:]" < "$root/hack/tools/kwok-version")
out=${STAGE_TOOLS_DIR:-$root/.cache/tools}/k8s-$k8s_version
kwok_out=${STAGE_TOOLS_DIR:-$root/.cache/tools}/kwok-$kwok_version

major_minor=${k8s_version#v}
major=${major_minor%%.*}
minor=${major_minor#*.}; minor=${minor%%.*}
ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$k8s_version \
 -X k8s.io/component-base/version.gitMajor=$major \
 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"

mkdir -p "$out" "$kwok_out"
# build_k8s CMD...: build each k8s.io/kubernetes command unless cached.
build_k8s() {
  local cmd start
  for cmd in "$@"; do
    if [ -x "$out/$cmd" ]; then
      echo "cached: $out/$cmd"
      continue
    fi
    echo "building $cmd $k8s_version (first time only: several minutes)"
    start=$(date +%s)
    (cd "$root/hack/tools" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd")
    mv "$out/$cmd.tmp" "$out/$cmd"
    echo "built $cmd in $(( $(date +%s) - start ))s"
  done
}

# The control plane first: most tests need only it.
build_k8s kube-apiserver kube-scheduler kube-controller-manager kubectl

# go_install_cached DIR BINARY PACKAGE@VERSION: go install into DIR unless there.
go_install_cached() {
  if [ -x "$1/$2" ]; then
    echo "cached: $1/$2"
    return
  fi
  echo "building $2 ${3##*@}"
  local start
  start=$(date +%s)
  GOBIN="$1" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "$3"
  echo "built $2 in $(( $(date +%s) - start ))s"
}

go_install_cached "$kwok_out" kwok "sigs.k8s.io/kwok/cmd/kwok@$kwok_version"

helm_version=$(tr -d "[:space:]" < "$root/hack/tools/helm-version")
helm_out=${STAGE_TOOLS_DIR:-$root/.cache/tools}/helm-$helm_version
go_install_cached "$helm_out" helm "helm.sh/helm/v3/cmd/helm@$helm_version"

# krew installs the plugin from krew.yaml in the release test.
krew_version=$(tr -d "[:space:]" < "$root/hack/tools/krew-version")
krew_out=${STAGE_TOOLS_DIR:-$root/.cache/tools}/krew-$krew_version
go_install_cached "$krew_out" krew "sigs.k8s.io/krew/cmd/krew@$krew_version"

# kwok runs no stage unless given one; take kwokctl's defaults (fast node
# initialisation, heartbeat with leases, fast pod lifecycle) from the same
# kwok release, so nodes stay Ready and pods become Running.
if [ ! -s "$kwok_out/stages.yaml" ]; then
  kwok_src=$(go mod download -json "sigs.k8s.io/kwok@$kwok_version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  stage_dir="$kwok_src/kustomize/stage"
  {
    for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
             pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
      echo "---"
      cat "$stage_dir/$f"
    done
  } > "$kwok_out/stages.yaml.tmp"
  mv "$kwok_out/stages.yaml.tmp" "$kwok_out/stages.yaml"
  echo "wrote $kwok_out/stages.yaml"
fi

# The node components last: only the real-node tests and demo run them.
build_k8s kubeadm kubelet
