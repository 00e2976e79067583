#!/usr/bin/env bash
# debian-accuracy.sh — imports the Debian tracker fixture from debian-fixture.sh into a fresh database, scans the
# bench rootfs (and the same rootfs as a docker-save image) and compares the (source package, CVE) pairs Vigil
# reports with expected.tsv: every CVE whose fixed version is newer than the installed source version, and no other.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
F=$BENCH/debian-fixture; O=$BENCH/out/vigil-debian; mkdir -p "$O"
[[ -f $F/expected.tsv ]] || bash "$(dirname "$0")/debian-fixture.sh"
[[ ${NOBUILD:-0} == 1 ]] || build_vigil
rm -f "$O"/vulndb.sqlite*
"$VIGIL" db import --db "$O/vulndb.sqlite" "$F/mirror" 2>&1 | tail -2
cut -f1,2 "$F/expected.tsv" | sort -u > "$O/expected"
bad=0
for t in "rootfs dir:$T/rootfs-bookworm" "docker-archive docker-archive:$T/docker-bookworm.tar" "disk-ext4 disk:$T/disk-ext4.raw"; do
  set -- $t
  "$VIGIL" scan --db "$O/vulndb.sqlite" --format json -o "$O/$1.json" "$2"
  jq -r '.findings[]|. as $f|.vulnerablePackages[]|"\(.sourceName)\t\($f.vulnerabilityId)"' "$O/$1.json" | sort -u > "$O/$1.got"
  miss=$(comm -23 "$O/expected" "$O/$1.got" | wc -l); extra=$(comm -13 "$O/expected" "$O/$1.got" | wc -l)
  printf '%-16s expected=%-4s vigil=%-4s missing=%-3s extra=%-3s\n' "$1" "$(wc -l < "$O/expected")" "$(wc -l < "$O/$1.got")" "$miss" "$extra"
  (( miss + extra )) && { bad=1; comm -3 "$O/expected" "$O/$1.got" | head -10; }
done
exit $bad
