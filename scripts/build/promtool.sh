#!/usr/bin/env bash
# Build promtool (Prometheus's rule checker and rule unit-test runner) from the Go module proxy
# into OUTDIR/bin/promtool, for the chart's alert tests (tests/integration/test_helm.py builds it through a
# fixture; run it by hand to check rules yourself):
#
#   scripts/build/promtool.sh [OUTDIR]   default: ${KES_STACK_CACHE:-~/.cache/kube-event-shipper-stack}/promtool/VERSION
#   PROMETHEUS_VERSION=v0.307.3 scripts/build/promtool.sh
#
# Prometheus 3.x is tagged v0.3XX.Y on the module proxy (v0.307.3 = Prometheus 3.7.3, which needs
# Go 1.24). Its go.mod has exclude directives, which `go install pkg@version` refuses, so promtool
# is built as a dependency of a throwaway module (where a dependency's excludes do not apply;
# the versions chosen are those Prometheus's own go.mod requires).
# Idempotent: a promtool that is already there is not rebuilt; prints the binary's path on stdout.
set -euo pipefail
PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-v0.307.3}
CACHE=${KES_STACK_CACHE:-$HOME/.cache/kube-event-shipper-stack}
OUT=${1:-$CACHE/promtool/$PROMETHEUS_VERSION}
BIN="$OUT/bin/promtool"
log() { printf '[stack:promtool] %s\n' "$*" >&2; }

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi
command -v go >/dev/null || { log "go is not on PATH: install Go 1.24+"; exit 1; }
mkdir -p "$OUT"
exec 9>"$OUT/.build.lock"   # two test runs at once build it once
flock 9
if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi
log "building promtool of github.com/prometheus/prometheus@$PROMETHEUS_VERSION (2-5 min cold on 2 cores)"
work="$OUT/module"
rm -rf "$work"
mkdir -p "$work" "$OUT/bin"
(
  cd "$work"
  go mod init kube-event-shipper.local/promtool >/dev/null 2>&1
  go get "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION" >&2
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN.tmp" \
    github.com/prometheus/prometheus/cmd/promtool
)
mv "$BIN.tmp" "$BIN"
rm -rf "$work"
log "promtool built: $BIN"
echo "$BIN"
