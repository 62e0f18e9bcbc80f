#!/usr/bin/env bash
# Build the node's binaries from the Go module proxy into $1/bin (a cache dir outside the tree):
# kubelet, kube-scheduler, kube-controller-manager and kubectl from k8s.io/kubernetes, in one
# `go build`, and a tiny static pause binary (the pod sandbox's process) from a local module.
#
#   K8S_VERSION=v1.34.4 scripts/build/kube-node.sh OUTDIR
#
# K8S_VERSION must be the kube-apiserver's (scripts/stack passes the one the built kube-apiserver
# reports). The throwaway module is made like scripts/build/kubernetes.sh's (a replace for every
# staging module k8s.io/kubernetes requires at v0.0.0), so both resolve the same module versions
# and share the Go module and build caches: with kube-apiserver built, most packages are compiled.
# Idempotent: binaries that are already there are not rebuilt.
set -euo pipefail
OUT=${1:?usage: kube-node.sh OUTDIR}
K8S_VERSION=${K8S_VERSION:?set K8S_VERSION (the kube-apiserver version, e.g. v1.34.4)}
mkdir -p "$OUT/bin"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
log() { printf '[stack:node] %s\n' "$*" >&2; }

build_kube() {
  local want=() b
  for b in kubelet kube-scheduler kube-controller-manager kubectl; do
    [ -x "$OUT/bin/$b" ] || want+=("$b")
  done
  [ ${#want[@]} -eq 0 ] && return 0
  local mod="$OUT/src/kube-node" minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  local staging="v0.${K8S_VERSION#v1.}"
  log "building ${want[*]} $K8S_VERSION from the Go module proxy (3-8 min with kube-apiserver's build cache, 15-30 min fully cold on 2 cores)"
  rm -rf "$mod"; mkdir -p "$mod"; cd "$mod"
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  {
    echo "module stackbuild/kube-node"
    echo "go 1.24"
    echo "require k8s.io/kubernetes $K8S_VERSION"
    grep -E '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$gomod" | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
  } > go.mod
  {
    echo "//go:build tools"
    echo "package tools"
    for b in "${want[@]}"; do echo "import _ \"k8s.io/kubernetes/cmd/$b\""; done
  } > tools.go
  go mod tidy >&2
  local pkgs=()
  for b in "${want[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
    -o "$OUT/bin.tmp/" "${pkgs[@]}" >&2
  for b in "${want[@]}"; do mv "$OUT/bin.tmp/$b" "$OUT/bin/$b"; done
  rm -rf "$OUT/bin.tmp"
  log "built ${want[*]}"
}

build_pause() {
  [ -x "$OUT/bin/pause" ] && return 0
  local mod="$OUT/src/pause"
  rm -rf "$mod"; mkdir -p "$mod"; cd "$mod"
  cat > go.mod <<'GO'
module stackbuild/pause

go 1.24
GO
  # What registry.k8s.io/pause does: hold the pod's namespaces, reap zombies (it is PID 1 of the
  # pod when the PID namespace is shared), exit at once on SIGINT/SIGTERM.
  cat > main.go <<'GO'
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println("pause (kube-event-shipper test stack)")
		return
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			fmt.Fprintf(os.Stderr, "Shutting down, got signal: %v\n", sig)
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
GO
  go build -trimpath -ldflags "-s -w" -o "$OUT/bin/pause" . >&2
  log "built pause"
}

build_pause
build_kube
