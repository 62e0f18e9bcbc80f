#!/usr/bin/env bash
# Build helm (v3) from the Go module proxy into OUTDIR/bin/helm, for the chart tests
# (tests/integration/test_helm.py builds it through a fixture; run it by hand to get a helm for the chart):
#
#   scripts/build/helm.sh [OUTDIR]   default: ${KES_STACK_CACHE:-~/.cache/kube-event-shipper-stack}/helm/VERSION
#   HELM_VERSION=v3.22.0 scripts/build/helm.sh
#
# The default, v3.19.5, is built with Kubernetes 1.34 client libraries, the version of the test
# stack's kube-apiserver, and needs Go 1.24 like the rest of the stack (v3.20 needs Go 1.25,
# v3.21+ Go 1.26).
#
# Idempotent: a helm of the wanted version that is already there is not rebuilt; prints the
# binary's path on stdout. `go install helm.sh/helm/v3/cmd/helm@VERSION` works as is (helm's go.mod
# has no replace directives); the ldflags are those of helm's Makefile, so `helm version` and the
# Kubernetes version that `helm template` and `helm lint` assume (.Capabilities.KubeVersion, the
# deprecation checks) are the release's, not the 1.20 fallback of a bare `go install`.
set -euo pipefail
HELM_VERSION=${HELM_VERSION:-v3.19.5}
CACHE=${KES_STACK_CACHE:-$HOME/.cache/kube-event-shipper-stack}
OUT=${1:-$CACHE/helm/$HELM_VERSION}
BIN="$OUT/bin/helm"
log() { printf '[stack:helm] %s\n' "$*" >&2; }

if [ -x "$BIN" ] && [ "$("$BIN" version --template '{{.Version}}' 2>/dev/null)" = "$HELM_VERSION" ]; then
  echo "$BIN"
  exit 0
fi
command -v go >/dev/null || { log "go is not on PATH: install Go 1.24+ (the version helm $HELM_VERSION's go.mod names)"; exit 1; }
mkdir -p "$OUT/bin"
exec 9>"$OUT/.build.lock"   # two test runs at once build it once
flock 9
if [ -x "$BIN" ] && [ "$("$BIN" version --template '{{.Version}}' 2>/dev/null)" = "$HELM_VERSION" ]; then
  echo "$BIN"
  exit 0
fi

log "downloading helm.sh/helm/v3@$HELM_VERSION and its dependencies from the Go module proxy"
gomod=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
[ -n "$gomod" ] && [ -f "$gomod" ] || { log "cannot find the go.mod of helm $HELM_VERSION"; exit 1; }
# The Kubernetes minor version helm is built against, as its Makefile derives it: client-go v0.N.
client_go=$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$gomod")
k8s_minor=$(echo "$client_go" | cut -d. -f2)
[ -n "$k8s_minor" ] || { log "no k8s.io/client-go in $gomod"; exit 1; }

log "building helm $HELM_VERSION (Kubernetes 1.$k8s_minor client; 1-3 min cold on 2 cores)"
tmp="$OUT/bin.tmp"
rm -rf "$tmp"
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in pkg/lint/rules pkg/chartutil; do
  ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$k8s_minor"
done
CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
mv "$tmp/helm" "$BIN"
rm -rf "$tmp"
log "helm built: $BIN ($("$BIN" version --short))"
echo "$BIN"
