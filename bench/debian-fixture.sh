#!/usr/bin/env bash
# debian-fixture.sh — builds a Debian-security-tracker-format fixture for the source packages of the bench rootfs
# (targets/rootfs-bookworm, installed from the bookworm point release only) from Debian's own packages:
#   1. for each source package in the rootfs ground truth, `apt-get download` the newest bookworm / bookworm-security
#      build of one of its binary packages (this machine's apt sources carry bookworm, -updates and -security);
#   2. read its /usr/share/doc/*/changelog.Debian.gz: every CVE named in an entry is fixed in that entry's version
#      (the oldest entry naming a CVE is taken as its fix);
#   3. write $OUT/mirror/debian/tracker.json in the tracker's JSON format (source -> CVE -> releases.bookworm with
#      status "resolved" and fixed_version) and $OUT/expected.tsv: every (source, CVE) whose fixed version is newer
#      than the installed source version (dpkg --compare-versions), i.e. what a correct scanner must report.
# Output: $BENCH/debian-fixture/{mirror/debian/tracker.json,expected.tsv,all.tsv,debs/}. Idempotent (FORCE=1 redoes).
set -euo pipefail
BENCH=${BENCH:-$HOME/vigil-bench}; GT=$BENCH/targets/ground-truth; OUT=$BENCH/debian-fixture
[[ -n ${FORCE:-} ]] && rm -rf "$OUT"
mkdir -p "$OUT/debs" "$OUT/mirror/debian" "$OUT/cl"
[[ -f $GT/rootfs-bookworm.dpkg.tsv ]] || { echo "run ../shared/bench/10-rootfs-bookworm.sh first"; exit 1; }
# source -> installed source version, and one binary per source (prefer the binary named like the source)
awk -F'\t' 'NR>1 && $6 ~ /^ii/ {print $4"\t"$5"\t"$1}' "$GT/rootfs-bookworm.dpkg.tsv" | sort -u > "$OUT/installed.tsv"
awk -F'\t' '{ if (!($1 in b) || $3==$1) b[$1]=$3; v[$1]=$2 } END{for (s in b) print s"\t"v[s]"\t"b[s]}' "$OUT/installed.tsv" | sort > "$OUT/sources.tsv"
echo "source packages: $(wc -l < "$OUT/sources.tsv")"
# one changelog per source: try its binaries until one ships /usr/share/doc/<pkg>/changelog.Debian.gz (or, for a
# native package, changelog.gz); many binaries' doc dirs are links to another binary's.
cd "$OUT/debs"
while IFS=$'\t' read -r src ver first; do
  cl=$OUT/cl/$src.gz; [[ -s $cl ]] && continue
  name=changelog.Debian.gz; [[ $ver == *-* ]] || name=changelog.gz
  for bin in $first $(awk -F'\t' -v s="$src" '$1==s{print $3}' "$OUT/installed.tsv"); do
    ls "$OUT"/debs/"${bin}"_*.deb >/dev/null 2>&1 || apt-get download -qq "$bin" >/dev/null 2>&1 || { echo "download failed: $bin"; continue; }
    deb=$(ls "$OUT"/debs/"${bin}"_*.deb | head -1)
    dpkg-deb --fsys-tarfile "$deb" | tar -xO --wildcards "./usr/share/doc/*/$name" 2>/dev/null > "$cl" || true
    [[ -s $cl ]] && break
  done
  [[ -s $cl ]] || echo "no changelog for source $src in any of its binaries"
done < "$OUT/sources.tsv"
cd "$OUT"
# the oldest entry naming a CVE is its fix: keep the lowest version per (source, CVE)
python3 - "$OUT" <<'PY'
import gzip, json, os, re, subprocess, sys, collections
out = sys.argv[1]
# entry header: "name (version) dist; urgency=..."; CVE ids anywhere in the entry body
header = re.compile(r"^[a-z0-9][a-z0-9+.-]* \(([^)]+)\) ")
with open(f"{out}/all.tsv", "w") as all_tsv:
    for line in open(f"{out}/sources.tsv"):
        src = line.split("\t")[0]
        cl = f"{out}/cl/{src}.gz"
        if not os.path.exists(cl) or os.path.getsize(cl) == 0:
            continue
        ver = None
        for l in gzip.open(cl, "rt", errors="replace"):
            m = header.match(l)
            if m:
                ver = m.group(1)
                continue
            for cve in re.findall(r"CVE-\d{4}-\d{4,}", l):
                if ver:
                    all_tsv.write(f"{src}\t{cve}\t{ver}\n")
def lt(a, b):
    return subprocess.run(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0
fix = {}
for line in open(f"{out}/all.tsv"):
    src, cve, ver = line.rstrip("\n").split("\t")
    k = (src, cve)
    if k not in fix or lt(ver, fix[k]):
        fix[k] = ver
installed = {l.split("\t")[0]: l.split("\t")[1] for l in open(f"{out}/sources.tsv")}
tracker = collections.defaultdict(dict)
expected = []
for (src, cve), ver in sorted(fix.items()):
    tracker[src][cve] = {"description": f"fixed in {src} {ver} per its changelog.Debian.gz", "scope": "local",
        "releases": {"bookworm": {"status": "resolved", "repositories": {"bookworm": installed[src]},
                                  "fixed_version": ver, "urgency": "medium"}}}
    if lt(installed[src], ver):
        expected.append(f"{src}\t{cve}\t{installed[src]}\t{ver}")
json.dump(tracker, open(f"{out}/mirror/debian/tracker.json", "w"), indent=1, sort_keys=True)
open(f"{out}/expected.tsv", "w").write("".join(e + "\n" for e in expected))
print(f"CVE fixes in changelogs: {len(fix)}; newer than installed (expected findings): {len(expected)} "
      f"in {len({e.split(chr(9))[0] for e in expected})} source packages")
PY
