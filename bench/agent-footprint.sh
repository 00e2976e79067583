#!/usr/bin/env bash
# agent-footprint.sh — vigil-agent's footprint on the bench rootfs (the agent issue's targets):
#   binary size for linux/amd64 and linux/arm64 (goal <= 15 MB), peak RSS and CPU of one collection
#   (goal <= 30 MB, <= 0.3 s CPU), the bytes on the wire of a full and of an unchanged upload (goal <= 1 KB),
#   and the CPU of an idle agent over IDLE seconds (default 300) with 60 s heartbeats (bench/agent-idle.sh).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
for arch in amd64 arm64; do
  (cd "$ROOT" && CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -ldflags "-s -w" -o "$out/vigil-agent-$arch" ./cmd/vigil-agent)
  printf 'binary linux/%s: %s bytes (goal <= 15 MB)\n' "$arch" "$(stat -c %s "$out/vigil-agent-$arch")"
done
for i in 1 2 3; do
  /usr/bin/time -f "collection of rootfs-bookworm: peak RSS %M KB, CPU %U s user + %S s system, %e s wall" \
    "$out/vigil-agent-amd64" collect --root "$T/rootfs-bookworm" --summary 2>&1 >/dev/null | tail -1
done
(cd "$ROOT" && go test -count=1 -run TestWireSizesBookworm -v ./agent/runner | grep -iE 'bytes|wire|upload' | head -5)
# Idle CPU with 60 s heartbeats against a real server (goal: near zero); IDLE=0 skips it.
[[ "${IDLE:-300}" != 0 ]] && "$(dirname "$0")/agent-idle.sh"
