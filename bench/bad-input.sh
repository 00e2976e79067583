#!/usr/bin/env bash
# bad-input.sh — feeds `vigil sbom` hostile and broken targets and prints, for each, the exit status, the message and
# the peak RSS (the inventory issue asks for a clear error naming the file, peak memory under 512 MB, nothing escaping
# the target). Targets are made in a temp dir from the bench corpus and by hand.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
[[ ${NOBUILD:-0} == 1 ]] || build_vigil
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
# 1. gzip bomb: 2 GiB of zeros as a 2 MB tar.gz
python3 - "$W/bomb.tar.gz" <<'PY'
import gzip, sys, tarfile, io
class Zeros(io.RawIOBase):
    def __init__(s, n): s.n = n
    def readable(s): return True
    def readinto(s, b):
        k = min(len(b), s.n); b[:k] = bytes(k); s.n -= k; return k
with gzip.open(sys.argv[1], "wb", compresslevel=1) as g:
    with tarfile.open(fileobj=g, mode="w|") as t:
        ti = tarfile.TarInfo("zeros.bin"); ti.size = 2 << 30
        t.addfile(ti, io.BufferedReader(Zeros(ti.size), 1 << 20))
PY
# 2. a docker-save tarball cut in the middle of its layer
head -c 100000000 "$T/docker-bookworm.tar" > "$W/truncated.tar"
# 3. tar entries that climb out of the root, or are absolute
python3 - "$W" <<'PY'
import io, sys, tarfile
for name, member in (("dotdot.tar", "../../etc/cron.d/evil"), ("absolute.tar", "/etc/cron.d/evil")):
    with tarfile.open(f"{sys.argv[1]}/{name}", "w") as t:
        ti = tarfile.TarInfo(member); data = b"* * * * * root rm -rf /\n"; ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
PY
# 4. an ext4 image whose superblock magic is destroyed
head -c 8388608 "$T/disk-ext4.raw" > "$W/corrupt-ext4.raw"; truncate -s 768M "$W/corrupt-ext4.raw"
printf '\x00\x00' | dd of="$W/corrupt-ext4.raw" bs=1 seek=1080 conv=notrunc status=none
# 5. a root with a symlink loop and links pointing out of the root, and garbage in the package databases
R=$W/root; mkdir -p "$R/etc" "$R/var/lib/dpkg" "$R/lib/apk/db" "$R/var/lib/rpm" "$R/loop"
ln -s ../../../../../etc/shadow "$R/etc/os-release"; ln -s /etc/passwd "$R/outside"; ln -s b "$R/loop/a"; ln -s a "$R/loop/b"
head -c 3000000 /dev/urandom > "$R/var/lib/dpkg/status"; head -c 100000 /dev/urandom > "$R/lib/apk/db/installed"
head -c 100000 /dev/urandom > "$R/var/lib/rpm/Packages"
printf '%-24s %-5s %-8s %s\n' TARGET EXIT PEAK_MB MESSAGE
for t in "archive:$W/bomb.tar.gz" "docker-archive:$W/truncated.tar" "archive:$W/dotdot.tar" "archive:$W/absolute.tar" \
         "disk:$W/corrupt-ext4.raw" "dir:$R"; do
  tf=$(mktemp); /usr/bin/time -v -o "$tf" "$VIGIL" sbom --format json -o "$W/out.json" "$t" > "$W/msg" 2>&1; rc=$?
  rss=$(awk -F': ' '/Maximum resident/{printf "%.0f", $2/1024}' "$tf"); rm -f "$tf"
  msg=$(grep -E 'vigil:|extractor|warning' "$W/msg" | head -3 | sed "s#$W#…#g" | tr '\n' ' ' | cut -c1-220)
  printf '%-24s %-5s %-8s %s\n' "${t%%:*}:$(basename "${t#*:}")" "$rc" "$rss" "$msg"
done
