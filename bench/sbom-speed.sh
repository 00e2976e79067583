#!/usr/bin/env bash
# sbom-speed.sh — times `vigil sbom` and `syft scan` side by side on the same targets (REPEAT runs each, median wall
# time, max peak RSS from /usr/bin/time -v) and prints the ratios the inventory issue asks for:
#   rootfs dir:       vigil time <= 1/5 of syft's, peak RSS <= 1/4 of syft's
#   oci-archive:      vigil time <= 1/3 of syft's, and <= 1.5x `gzip -dc` of the layer (the floor)
#   raw ext4 image:   vigil (reading the image itself) <= 1/3 of syft on the same fs loop-mounted
# Run it on an otherwise idle machine. Needs ../shared/bench/build-all.sh to have run.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
SYFT=$BENCH/bin/syft; N=${REPEAT:-5}; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export SYFT_CHECK_FOR_APP_UPDATE=false SYFT_CACHE_DIR=$BENCH/.cache/syft
[[ ${NOBUILD:-0} == 1 ]] || build_vigil
measure() { # name cmd... -> prints "median_wall max_rss"
  local name=$1; shift; local walls=() rss=0 i
  for ((i=0;i<N;i++)); do timeit m "$@"; walls+=("$m_wall"); rss=$(awk -v a="$rss" -v b="$m_rss" 'BEGIN{print (b>a?b:a)}'); done
  echo "$(printf '%s\n' "${walls[@]}" | median) $rss"
}
row() { # label vigil(w r) peer(w r) time-goal rss-goal
  local vw=$2 vr=$3 pw=$4 pr=$5
  printf '%-28s vigil %6.2fs %6.0fMB | %-10s %6.2fs %6.0fMB | time ratio %.3f (goal <= %s)  rss ratio %.3f%s\n' \
    "$1" "$vw" "$vr" "$6" "$pw" "$pr" "$(awk -v a="$vw" -v b="$pw" 'BEGIN{print a/b}')" "$7" "$(awk -v a="$vr" -v b="$pr" 'BEGIN{print a/b}')" "${8:+ (goal <= $8)}"
}
echo "# $(date -u +%FT%TZ), $(nproc) cores, median of $N runs"
read -r vw vr < <(measure v "$VIGIL" sbom --format json -o "$tmp/o.json" "dir:$T/rootfs-bookworm")
read -r sw sr < <(measure s "$SYFT" scan "dir:$T/rootfs-bookworm" -q -o "cyclonedx-json=$tmp/s.json")
row "rootfs dir" "$vw" "$vr" "$sw" "$sr" syft 0.2 0.25
read -r vw vr < <(measure v "$VIGIL" sbom --format json -o "$tmp/o.json" "oci-archive:$T/oci-bookworm.tar")
read -r sw sr < <(measure s "$SYFT" scan "oci-archive:$T/oci-bookworm.tar" -q -o "cyclonedx-json=$tmp/s.json")
row "oci-archive" "$vw" "$vr" "$sw" "$sr" syft 0.333
layer=$(ls -S "$T"/oci-bookworm-layout/blobs/sha256/* | head -1)
read -r gw gr < <(measure g sh -c "gzip -dc '$layer' > /dev/null")
row "oci-archive vs gzip -dc" "$vw" "$vr" "$gw" "$gr" "gzip -dc" 1.5
read -r vw vr < <(measure v "$VIGIL" sbom --format json -o "$tmp/o.json" "docker-archive:$T/docker-bookworm.tar")
read -r sw sr < <(measure s "$SYFT" scan "docker-archive:$T/docker-bookworm.tar" -q -o "cyclonedx-json=$tmp/s.json")
row "docker-archive" "$vw" "$vr" "$sw" "$sr" syft "-"
mnt=$tmp/mnt; mkdir -p "$mnt"
read -r vw vr < <(measure v "$VIGIL" sbom --format json -o "$tmp/o.json" "disk:$T/disk-ext4.raw")
if mount -o ro,loop "$T/disk-ext4.raw" "$mnt" 2>/dev/null; then
  read -r sw sr < <(measure s "$SYFT" scan "dir:$mnt" -q -o "cyclonedx-json=$tmp/s.json")
  umount "$mnt"
  row "raw ext4 (syft: loop mount)" "$vw" "$vr" "$sw" "$sr" syft 0.333
else
  echo "raw ext4: vigil ${vw}s ${vr}MB; syft cannot read the image and loop mounting is not permitted here"
fi
