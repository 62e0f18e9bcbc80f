#!/usr/bin/env bash
# Build influxd (InfluxDB 1.8.10: the last 1.x whose Flux is pure Go; 1.11+ and 2.x need libflux,
# i.e. a pinned Rust toolchain) from the Go module proxy into $1/bin (a cache dir outside the tree).
# Idempotent: a binary that is already there is not rebuilt.
set -euo pipefail
OUT=${1:?usage: influxdb.sh OUTDIR}
INFLUXDB_VERSION=${INFLUXDB_VERSION:-v1.8.10}
log() { printf '[stack:influxdb] %s\n' "$*" >&2; }
[ -x "$OUT/bin/influxd" ] && exit 0
mkdir -p "$OUT/bin"
log "building influxd $INFLUXDB_VERSION from the Go module proxy (2-3 min cold on 2 cores)"
# go install PKG@VERSION builds with the module's own go.mod (no replace directives) and needs no
# cgo. If a future Go trips on its old dependencies: GOTOOLCHAIN=go1.22.12 (also from the proxy).
tmp="$OUT/bin.tmp"
rm -rf "$tmp"
CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath \
  -ldflags "-s -w -X main.version=${INFLUXDB_VERSION#v} -X main.branch=$INFLUXDB_VERSION -X main.commit=$INFLUXDB_VERSION" \
  "github.com/influxdata/influxdb/cmd/influxd@$INFLUXDB_VERSION"
mv "$tmp/influxd" "$OUT/bin/influxd"
rm -rf "$tmp"
log "influxd built: $("$OUT/bin/influxd" version)"
