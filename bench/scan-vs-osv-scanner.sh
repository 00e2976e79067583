#!/usr/bin/env bash
# scan-vs-osv-scanner.sh — runs `vigil scan` and osv-scanner (fully offline, over the same ../shared/vulndata/osv
# zips) side by side on the Go binaries, python-app and the docker-save image, and prints:
#   - accuracy: the set of vulnerabilities each reports (aliases merged: IDs that either tool lists together count
#     as one vulnerability), and the difference in both directions;
#   - speed and memory: median wall time and max peak RSS of REPEAT runs, and the ratios (goal: vigil >= 3x faster,
#     <= 1/3 of the memory).
# Vigil's database is imported once from ../shared/vulndata (not timed, as osv-scanner's zips are prepared once too).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
OSV=$BENCH/bin/osv-scanner; N=${REPEAT:-5}; O=$BENCH/out/vigil-vs-osv; mkdir -p "$O"
VULNDATA=${VULNDATA:-$ROOT/../shared/vulndata}; DBDIR=$BENCH/.cache/osvdb; VDB=$O/vulndb.sqlite
mkdir -p "$DBDIR/osv-scalibr"
for z in "$VULNDATA"/osv/*/all.zip; do ln -sfn "$(dirname "$z")" "$DBDIR/osv-scalibr/$(basename "$(dirname "$z")")"; done
[[ ${NOBUILD:-0} == 1 ]] || build_vigil
if [[ ! -f $VDB || -n ${FORCE:-} ]]; then
  rm -f "$VDB"*; /usr/bin/time -f "import of all vulndata: %e s wall, %M KB peak" "$VIGIL" db import --db "$VDB" "$VULNDATA" 2>&1 | tail -1
fi
measure() { # cmd... -> "median_wall max_rss"
  local walls=() rss=0 i
  for ((i=0;i<N;i++)); do timeit m "$@"; walls+=("$m_wall"); rss=$(awk -v a="$rss" -v b="$m_rss" 'BEGIN{print (b>a?b:a)}'); done
  echo "$(printf '%s\n' "${walls[@]}" | median) $rss"
}
compare() { # name vigil.json osv.json
  python3 - "$@" <<'PY'
import json, sys
name, vf, of = sys.argv[1:4]
parent = {}
def find(x):
    while parent.setdefault(x, x) != x:
        parent[x] = parent[parent[x]]; x = parent[x]
    return x
def union(ids):
    ids = [i for i in ids if i]
    for i in ids[1:]: parent[find(i)] = find(ids[0])
v = json.load(open(vf)); v = v if isinstance(v, list) else [v]
vig = []
for r in v:
    for f in r["findings"]:
        ids = [f["vulnerabilityId"]] + f.get("relatedVulnerabilities", [])
        union(ids); vig.append(ids)
osv = []
for res in json.load(open(of)).get("results", []):
    for p in res.get("packages", []):
        for vv in p.get("vulnerabilities", []):
            ids = [vv["id"]] + vv.get("aliases", []) + vv.get("upstream", [])
            union(ids); osv.append(ids)
def label(root):
    members = sorted(k for k in parent if find(k) == root)
    cves = [m for m in members if m.startswith("CVE-")]
    return (cves or members)[0] + ("" if len(members) == 1 else " (" + ",".join(m for m in members if m != (cves or members)[0]) + ")")
vs = {find(ids[0]) for ids in vig}; os_ = {find(ids[0]) for ids in osv}
print(f"{name:<14} vigil={len(vs):<4} osv-scanner={len(os_):<4} both={len(vs & os_):<4} only-vigil={len(vs - os_):<3} only-osv-scanner={len(os_ - vs)}")
for r in sorted(vs - os_): print("   only vigil:       ", label(r))
for r in sorted(os_ - vs): print("   only osv-scanner: ", label(r))
PY
}
row() { printf '%-28s vigil %6.2fs %6.0fMB | osv-scanner %6.2fs %6.0fMB | speed-up %.1fx (goal >= 3)  memory ratio %.2f (goal <= 0.33)\n' \
  "$1" "$2" "$3" "$4" "$5" "$(awk -v a="$4" -v b="$2" 'BEGIN{print a/b}')" "$(awk -v a="$3" -v b="$5" 'BEGIN{print a/b}')"; }
echo "# $(date -u +%FT%TZ), $(nproc) cores, median of $N runs"
T_GO=$T/go-binary/bin; T_PY=$T/python-app; T_IMG=$T/docker-bookworm.tar
"$VIGIL" scan --db "$VDB" --format json -o "$O/go.vigil.json" "dir:$T_GO"
"$OSV" scan source -r --experimental-plugins artifact "$T_GO" --offline --local-db-path "$DBDIR" --format json --output-file "$O/go.osv.json" >/dev/null 2>&1
"$VIGIL" scan --db "$VDB" --format json -o "$O/py.vigil.json" "dir:$T_PY"
"$OSV" scan source -r "$T_PY" --offline --local-db-path "$DBDIR" --format json --output-file "$O/py.osv.json" >/dev/null 2>&1
echo "## accuracy (same OSV data)"; compare go-binaries "$O/go.vigil.json" "$O/go.osv.json"; compare python-app "$O/py.vigil.json" "$O/py.osv.json"
echo "## speed and memory"
# Each target: the one vigil binary, its scan-only build (-tags scanonly, no server code linked), osv-scanner.
vrow() { # name osv_wall osv_rss vigil-args...
  local name=$1 ow=$2 or=$3; shift 3
  read -r vw vr < <(measure "$VIGIL" "$@"); row "$name" "$vw" "$vr" "$ow" "$or"
  read -r vw vr < <(measure "$VIGIL_SCAN" "$@"); row "$name (scanonly)" "$vw" "$vr" "$ow" "$or"
}
read -r ow or < <(measure "$OSV" scan source -r --experimental-plugins artifact "$T_GO" --offline --local-db-path "$DBDIR" --format json --output-file "$O/t.osv.json")
vrow go-binaries "$ow" "$or" scan --db "$VDB" --format json -o "$O/t.json" "dir:$T_GO"
read -r ow or < <(measure "$OSV" scan source -r "$T_PY" --offline --local-db-path "$DBDIR" --format json --output-file "$O/t.osv.json")
vrow python-app "$ow" "$or" scan --db "$VDB" --format json -o "$O/t.json" "dir:$T_PY"
read -r ow or < <(measure "$OSV" scan image --archive "$T_IMG" --offline --local-db-path "$DBDIR" --format json --output-file "$O/t.osv.json")
vrow docker-archive "$ow" "$or" scan --db "$VDB" --format json -o "$O/t.json" "docker-archive:$T_IMG"
