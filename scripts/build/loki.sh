#!/usr/bin/env bash
# Build the Loki single binary (cmd/loki) from the Go module proxy into $1/bin (a cache dir outside
# the tree). github.com/grafana/loki/v3 has replace directives in its go.mod, so `go install
# ...@v` refuses it: build inside a throwaway module that requires it and repeats its replaces
# (generated from the real go.mod, not typed). Idempotent: a binary already there is not rebuilt.
set -euo pipefail
OUT=${1:?usage: loki.sh OUTDIR}
LOKI_VERSION=${LOKI_VERSION:-v3.7.8}
export CGO_ENABLED=0 GOFLAGS=-mod=mod
log() { printf '[stack:loki] %s\n' "$*" >&2; }
[ -x "$OUT/bin/loki" ] && exit 0
mkdir -p "$OUT/bin"
mod="$OUT/src/loki"
log "building loki $LOKI_VERSION (cmd/loki only) from the Go module proxy (5-10 min cold on 2 cores)"
rm -rf "$mod"; mkdir -p "$mod"; cd "$mod"
gomod=$(go mod download -json "github.com/grafana/loki/v3@$LOKI_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
goline=$(grep -m1 -E '^go [0-9.]+' "$gomod")
{
  echo "module stackbuild/loki"
  echo "$goline"
  echo "require github.com/grafana/loki/v3 $LOKI_VERSION"
  # Loki's own replace lines, minus the ones pointing into its source tree (./pkg/push: that nested
  # module is not in the v3 module zip; the pseudo-version its require line names is used instead).
  grep -E '^replace ' "$gomod" | grep -v -E '=> \./' || true
} > go.mod
cat > tools.go <<GO
//go:build tools
package tools
import _ "github.com/grafana/loki/v3/cmd/loki"
GO
log "resolving modules (go mod tidy)"
go mod tidy >&2
log "compiling (go build -trimpath -tags netgo)"
pkg=github.com/grafana/loki/v3/pkg/util/build
go build -trimpath -tags netgo \
  -ldflags "-s -w -X $pkg.Version=${LOKI_VERSION#v} -X $pkg.Branch=$LOKI_VERSION -X $pkg.Revision=$LOKI_VERSION" \
  -o "$OUT/bin/loki.tmp" github.com/grafana/loki/v3/cmd/loki >&2
mv "$OUT/bin/loki.tmp" "$OUT/bin/loki"
log "loki built: $("$OUT/bin/loki" -version 2>&1 | head -1)"
