#!/usr/bin/env bash
# gen.sh — rebuilds the rpm database fixtures with real tools (Debian's rpm 4.18, rpmbuild, sqlite3 and
# Berkeley DB 5.3's db5.3_load):
#   rocky9-sqlite/var/lib/rpm/rpmdb.sqlite   written by rpm itself (--justdb installs)
#   bdb/Packages                              a Berkeley DB hash database written by db5.3_load from the
#                                             same header blobs, keyed like rpm's (4-byte host-order
#                                             header number; record 0 holds the next number). rpm's own
#                                             bdb_ro backend reads it back into bdb.expected.
#   expected.tsv                              `rpm -qa` over the sqlite database
# The packages are empty but carry the real name/epoch/version/release/arch/sourcerpm/license/vendor of
# Rocky Linux 9.3 packages (openssl-libs is built as a subpackage of openssl, as upstream does).
# Needs: apt-get install rpm sqlite3 db5.3-util
set -euo pipefail
cd "$(dirname "$0")"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
mkdir -p "$W"/{SPECS,BUILD,RPMS,SRPMS,SOURCES}
spec() { # name epoch version release arch license subpkg|-
  {
    echo "Name: $1"; [[ $2 != 0 ]] && echo "Epoch: $2"
    printf 'Version: %s\nRelease: %s\nSummary: %s\nLicense: %s\nBuildArch: %s\n' "$3" "$4" "$1" "$6" "$5"
    printf 'Vendor: Rocky Enterprise Software Foundation\n%%description\n%s\n' "$1"
    if [[ $7 != - ]]; then printf '%%package %s\nSummary: %s-%s\n%%description %s\n%s\n%%files %s\n' "$7" "$1" "$7" "$7" "$7" "$7"; else printf '%%files\n'; fi
  } > "$W/SPECS/$1.spec"
}
spec openssl 1 3.0.7 27.el9 x86_64 "ASL 2.0" libs
spec bash 0 5.1.8 9.el9 x86_64 "GPLv3+" -
spec tzdata 0 2024a 1.el9 noarch "Public Domain" -
for s in "$W"/SPECS/*.spec; do
  rpmbuild --quiet -bb --define "_topdir $W" --define "_build_id_links none" \
    --target "$(awk '/^BuildArch:/{print $2}' "$s")" "$s" >/dev/null
done
R=rocky9-sqlite; rm -rf "$R"; mkdir -p "$R/var/lib/rpm" "$R/etc"
printf 'NAME="Rocky Linux"\nVERSION="9.3 (Blue Onyx)"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"\nPLATFORM_ID="platform:el9"\nPRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"\n' > "$R/etc/os-release"
rpm --define "_db_backend sqlite" --root "$PWD/$R" --dbpath /var/lib/rpm --initdb
rpm --define "_db_backend sqlite" --root "$PWD/$R" --dbpath /var/lib/rpm -i --justdb --nodeps --ignorearch --noscripts \
  $(find "$W/RPMS" -name '*.rpm') 2>&1 | { grep -v 'use Alien\|know what you are doing' || true; }
sqlite3 "$R/var/lib/rpm/rpmdb.sqlite" 'PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE; VACUUM;' >/dev/null
rm -f "$R"/var/lib/rpm/rpmdb.sqlite-{wal,shm} "$R"/var/lib/rpm/.rpm.lock
QF='%{NAME}\t%{EPOCHNUM}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\t%{LICENSE}\n'
rpm --define "_db_backend sqlite" --root "$PWD/$R" --dbpath /var/lib/rpm -qa --qf "$QF" | sort > expected.tsv

# Berkeley DB: db_load's "bytevalue" dump format, hex key line then hex value line per record.
rm -rf bdb; mkdir bdb
{
  printf 'VERSION=3\nformat=bytevalue\ntype=hash\nHEADER=END\n'
  next=$(sqlite3 "$R/var/lib/rpm/rpmdb.sqlite" 'SELECT max(hnum)+1 FROM Packages')
  le() { printf '%02x%02x%02x%02x' $(($1&255)) $(($1>>8&255)) $(($1>>16&255)) $(($1>>24&255)); }
  printf ' %s\n %s\n' "$(le 0)" "$(le "$next")"
  sqlite3 "$R/var/lib/rpm/rpmdb.sqlite" 'SELECT hnum, lower(hex(blob)) FROM Packages ORDER BY hnum' |
    while IFS='|' read -r n hex; do printf ' %s\n %s\n' "$(le "$n")" "$hex"; done
  printf 'DATA=END\n'
} | db5.3_load -c db_pagesize=1024 bdb/Packages
rpm --define "_db_backend bdb_ro" --dbpath "$PWD/bdb" -qa --qf "$QF" 2>/dev/null | sort > bdb.expected
rm -f bdb/__db.* bdb/.rpm.lock
cmp expected.tsv bdb.expected && echo "rpm reads the Berkeley DB fixture back identically"
