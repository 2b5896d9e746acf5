#!/usr/bin/env bash
# Cross-builds the release archives reproducibly into $DIST_DIR (default
# dist/): the plugin and the webhook for every platform, and the Helm chart.
#   hack/dist.sh [all|plugin|webhook|chart|images]
# images: make image's OCI tarballs (webhook, gossip v1/v2, pause) for this
# host's architecture, with the release's version stamp, in $DIST_DIR/images.
# Same sources + same hack/release.env + same Go = byte-identical archives:
# no VCS stamping, trimmed paths, fixed version info, and tarballs with fixed
# order, times, owners and modes.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=release.env
source hack/release.env

DIST_DIR=${DIST_DIR:-dist}
PLATFORMS=${PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64}
GO=${GO:-go}
what=${1:-all}

version_pkg=github.com/kubectl-stage/kubectl-stage/pkg/version
ldflags="-s -w -X ${version_pkg}.gitVersion=${RELEASE_VERSION} -X ${version_pkg}.gitCommit=${RELEASE_COMMIT} -X ${version_pkg}.gitTreeState=clean -X ${version_pkg}.buildDate=${RELEASE_DATE}"
epoch=$(date -u -d "$RELEASE_DATE" +%s)
mkdir -p "$DIST_DIR"

# archive NAME MAIN_PACKAGE: one NAME_VERSION_OS_ARCH.tar.gz per platform,
# holding the binary and LICENSE.
archive() {
  local name=$1 main=$2 platform os arch ext stage
  for platform in $PLATFORMS; do
    os=${platform%/*} arch=${platform#*/} ext=""
    [[ $os == windows ]] && ext=.exe
    stage=$(mktemp -d)
    CGO_ENABLED=0 GOOS=$os GOARCH=$arch "$GO" build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$stage/$name$ext" "$main"
    cp LICENSE "$stage/LICENSE"
    tar --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner --format=gnu \
      --mode='u+rwX,go+rX,go-w' -C "$stage" -cf - "$name$ext" LICENSE |
      gzip -n -9 >"$DIST_DIR/${name}_${RELEASE_VERSION}_${os}_${arch}.tar.gz"
    rm -rf "$stage"
    echo "built $DIST_DIR/${name}_${RELEASE_VERSION}_${os}_${arch}.tar.gz"
  done
}

chart() {
  local helm
  helm=${STAGE_TOOLS_DIR:-.cache/tools}/helm-$(tr -d '[:space:]' < hack/tools/helm-version)/helm
  [[ -x $helm ]] || helm=""
  if [[ -z $helm ]]; then
    echo "helm is not built: run make tools" >&2
    exit 1
  fi
  "$helm" package charts/kubectl-stage --destination "$DIST_DIR" --version "${RELEASE_VERSION#v}" --app-version "$RELEASE_VERSION"
}

case $what in
  plugin) archive kubectl-stage ./cmd/kubectl-stage ;;
  webhook) archive stage-webhook ./webhook/cmd/stage-webhook ;;
  chart) chart ;;
  images) "$GO" run ./hack/image -out "$DIST_DIR/images" -webhook-ldflags "$ldflags" ;;
  all)
    archive kubectl-stage ./cmd/kubectl-stage
    archive stage-webhook ./webhook/cmd/stage-webhook
    chart
    "$GO" run ./hack/image -out "$DIST_DIR/images" -webhook-ldflags "$ldflags"
    ;;
  *)
    echo "usage: $0 [all|plugin|webhook|chart|images]" >&2
    exit 2
    ;;
esac
(cd "$DIST_DIR" && sha256sum -- *.tar.gz *.tgz images/*.tar 2>/dev/null >SHA256SUMS || true)
