#!/usr/bin/env bash
# Build kube-apiserver and etcd from the Go module proxy into $1 (a cache dir outside the tree).
# Idempotent: a binary that is already there is not rebuilt.
set -euo pipefail
OUT=${1:?usage: kubernetes.sh OUTDIR}
K8S_VERSION=${K8S_VERSION:-v1.34.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
mkdir -p "$OUT/bin"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
log() { printf '[stack:kubernetes] %s\n' "$*" >&2; }

build_etcd() {
  [ -x "$OUT/bin/etcd" ] && return 0
  local mod="$OUT/src/etcd"
  log "building etcd $ETCD_VERSION from the Go module proxy (a few minutes cold)"
  rm -rf "$mod"; mkdir -p "$mod"; cd "$mod"
  go mod init stackbuild/etcd >/dev/null 2>&1
  cat > tools.go <<GO
//go:build tools
package tools
import _ "go.etcd.io/etcd/server/v3"
GO
  # The etcd binary is the main package at the root of the server module.
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  go build -trimpath -ldflags "-s -w" -o "$OUT/bin/etcd" go.etcd.io/etcd/server/v3 >&2
  log "etcd built"
}

build_apiserver() {
  [ -x "$OUT/bin/kube-apiserver" ] && return 0
  local mod="$OUT/src/kube-apiserver" minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  local staging="v0.${K8S_VERSION#v1.}"
  log "building kube-apiserver $K8S_VERSION from the Go module proxy (10-25 min cold on 2 cores)"
  rm -rf "$mod"; mkdir -p "$mod"; cd "$mod"
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  {
    echo "module stackbuild/kube-apiserver"
    echo "go 1.24"
    echo "require k8s.io/kubernetes $K8S_VERSION"
    # Every staging module k8s.io/kubernetes requires at v0.0.0 maps to its published tag.
    grep -E '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$gomod" | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
  } > go.mod
  cat > tools.go <<GO
//go:build tools
package tools
import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
  go mod tidy >&2
  go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
    -o "$OUT/bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2
  log "kube-apiserver built"
}

build_etcd
build_apiserver
