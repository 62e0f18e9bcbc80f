#!/usr/bin/env bash
# Build helm-docs from the Go module proxy into OUTDIR/bin/helm-docs, for the chart README
# (tests/integration/test_helm.py builds it through a fixture and fails when the committed
# helm/kube-event-shipper/README.md is not what helm-docs makes of values.yaml and README.md.gotmpl):
#
#   scripts/build/helm-docs.sh [OUTDIR]   default: ${KES_STACK_CACHE:-~/.cache/kube-event-shipper-stack}/helm-docs/VERSION
#   HELM_DOCS_VERSION=v1.14.2 scripts/build/helm-docs.sh
#
# Regenerate the README after changing values.yaml's `# --` comments or README.md.gotmpl:
#
#   $(scripts/build/helm-docs.sh) --chart-search-root helm --skip-version-footer
#
# Idempotent: a helm-docs of the wanted version that is already there is not rebuilt; prints the
# binary's path on stdout. github.com/norwoodj/helm-docs has no replace directives, so `go install
# .../cmd/helm-docs@VERSION` works as is; the version is set as its release builds set it (main.version).
# About 1 min cold on 2 cores (downloading its modules, helm's among them, and compiling).
set -euo pipefail
HELM_DOCS_VERSION=${HELM_DOCS_VERSION:-v1.14.2}
CACHE=${KES_STACK_CACHE:-$HOME/.cache/kube-event-shipper-stack}
OUT=${1:-$CACHE/helm-docs/$HELM_DOCS_VERSION}
BIN="$OUT/bin/helm-docs"
log() { printf '[stack:helm-docs] %s\n' "$*" >&2; }

built() { [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -qF "${HELM_DOCS_VERSION#v}"; }

if built; then
  echo "$BIN"
  exit 0
fi
command -v go >/dev/null || { log "go is not on PATH: install Go 1.22+"; exit 1; }
mkdir -p "$OUT/bin"
exec 9>"$OUT/.build.lock"   # two test runs at once build it once
flock 9
if built; then
  echo "$BIN"
  exit 0
fi

start=$(date +%s)
log "downloading github.com/norwoodj/helm-docs@$HELM_DOCS_VERSION and its dependencies from the Go module proxy"
go mod download "github.com/norwoodj/helm-docs@$HELM_DOCS_VERSION"
log "building helm-docs $HELM_DOCS_VERSION (about 1 min cold on 2 cores)"
tmp="$OUT/bin.tmp"
rm -rf "$tmp"
CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath \
  -ldflags "-s -w -X main.version=${HELM_DOCS_VERSION#v}" \
  "github.com/norwoodj/helm-docs/cmd/helm-docs@$HELM_DOCS_VERSION"
mv "$tmp/helm-docs" "$BIN"
rm -rf "$tmp"
log "helm-docs built in $(( $(date +%s) - start ))s: $BIN ($("$BIN" --version))"
echo "$BIN"
