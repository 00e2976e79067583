#!/usr/bin/env bash
# sbom-accuracy.sh — runs `vigil sbom --format json` on every target that ../shared/bench/build-all.sh builds and
# compares the packages with the ground truth in $BENCH/targets/ground-truth (same keys as 95-compare-syft.sh).
# Prints one row per target: truth, vigil, missing, extra. Exit status 1 if any row differs.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
O=$BENCH/out/vigil; C=$BENCH/.cache/vigil-cmp; mkdir -p "$O" "$C"
[[ ${NOBUILD:-0} == 1 ]] || build_vigil
bad=0
cmp() { # label vigil-list truth-list
  local miss extra; miss=$(comm -23 "$3" "$2" | wc -l); extra=$(comm -13 "$3" "$2" | wc -l)
  printf '%-36s truth=%-4s vigil=%-4s missing=%-3s extra=%-3s' "$1" "$(wc -l < "$3")" "$(wc -l < "$2")" "$miss" "$extra"
  if (( miss + extra > 0 )); then bad=1; printf '  [missing: %s] [extra: %s]' "$(comm -23 "$3" "$2" | head -5 | tr '\n' ' ')" "$(comm -13 "$3" "$2" | head -5 | tr '\n' ' ')"; fi
  echo
}
run() { # name target -> runs vigil once, caches JSON
  local name=$1 target=$2
  if ! "$VIGIL" sbom --format json -o "$O/$name.json" "$target" 2>"$O/$name.err"; then echo "$name: vigil failed: $(tail -3 "$O/$name.err")"; bad=1; echo '{"packages":[]}' > "$O/$name.json"; fi
}
vq() { jq -r "(if type==\"array\" then .[] else . end)|.packages[]|$2" "$O/$1.json" | sort -u > "$C/$1.$3"; echo "$C/$1.$3"; }
DEB='select(.ecosystem|startswith("Debian"))|[.name,.version,(.sourceName//.name),(.sourceVersion//.version)]|@tsv'
awk -F'\t' 'NR>1 && $6 ~ /^ii/ {print $1"\t"$2"\t"$4"\t"$5}' "$GT/rootfs-bookworm.dpkg.tsv" | sort -u > "$C/gt.deb"
echo "# deb: name, version, source, source version"
for t in "rootfs-dir dir:$T/rootfs-bookworm" "oci-archive oci-archive:$T/oci-bookworm.tar" "oci-dir oci-dir:$T/oci-bookworm-layout" \
         "docker-archive docker-archive:$T/docker-bookworm.tar" "crane-archive docker-archive:$T/oci-bookworm-crane.tar" \
         "disk-ext4 disk:$T/disk-ext4.raw" "disk-xfs disk:$T/disk-xfs.raw" "disk-xfs-proto disk:$T/disk-xfs-proto.raw" "disk-gpt disk:$T/disk-gpt.raw" \
         ${REGISTRY:+"registry registry:$REGISTRY"}; do
  set -- $t; run "$1" "$2"; cmp "$1 deb" "$(vq "$1" "$DEB" deb)" "$C/gt.deb"
done
echo "# python: name@version, PEP 503-normalized"
norm() { awk -F@ '{n=tolower($1); gsub(/[-_.]+/,"-",n); print n"@"$2}' | sort -u; }
awk -F'\t' '{print $1"@"$2}' "$GT/rootfs-bookworm.python.tsv" | norm > "$C/gt.py"
vq rootfs-dir 'select(.ecosystem=="PyPI")|"\(.name)@\(.version)"' py0 >/dev/null; norm < "$C/rootfs-dir.py0" > "$C/rootfs-dir.py"
cmp "rootfs-dir python" "$C/rootfs-dir.py" "$C/gt.py"
awk -F'\t' 'NR>1{print $1"@"$2}' "$GT/python-app.tsv" | norm > "$C/gt-app.py"
# the function zip ships only the installed distributions (the site-packages rows), no requirements.txt
awk -F'\t' 'NR>1 && $3 ~ /^site-packages/ {print $1"@"$2}' "$GT/python-app.tsv" | norm > "$C/gt-fn.py"
for t in "python-app dir:$T/python-app gt-app.py" "function-python archive:$T/function-python.zip gt-fn.py"; do
  set -- $t; run "$1" "$2"; vq "$1" 'select(.ecosystem=="PyPI")|"\(.name)@\(.version)"' py0 >/dev/null; norm < "$C/$1.py0" > "$C/$1.py"
  cmp "$1 python" "$C/$1.py" "$C/$3"
done
echo "# npm: name@version; prod = lockfile prod deps + root package; all = prod + dev"
{ awk -F'\t' 'NR>1 && $4=="prod"{print $1"@"$2}' "$GT/node-app.npm.tsv"; echo "bench-vuln-function@1.0.0"; } | sort -u > "$C/gt.npm"
{ awk -F'\t' 'NR>1{print $1"@"$2}' "$GT/node-app.npm.tsv"; echo "bench-vuln-function@1.0.0"; } | sort -u > "$C/gt-all.npm"
# with node_modules present, the truth is what is installed: fsevents (darwin-only, optional) is in the lockfile
# but not on disk; the function zip was built with --omit=dev, so it holds the prod packages only
{ awk -F'\t' -v d="$T/node-app" 'NR>1 { f = d "/" $3 "/package.json"; if ((getline line < f) > 0) print $1"@"$2; close(f) }' "$GT/node-app.npm.tsv"
  echo "bench-vuln-function@1.0.0"; } | sort -u > "$C/gt-installed.npm"
for t in "node-app dir:$T/node-app gt-installed.npm" "node-lockonly dir:$T/node-app-lockonly gt-all.npm" "function-node archive:$T/function-node.zip gt.npm"; do
  set -- $t; run "$1" "$2"
  cmp "$1 npm prod" "$(vq "$1" 'select(.ecosystem=="npm" and (.dev|not))|"\(.name)@\(.version)"' npmprod)" "$C/gt.npm"
  cmp "$1 npm all" "$(vq "$1" 'select(.ecosystem=="npm")|"\(.name)@\(.version)"' npm)" "$C/$3"
done
echo "# go: path@version from go version -m (deps + main + stdlib)"
for v in 1.20 1.26; do
  awk -F'\t' '$2=="dep"{print $3"@"$4} $2=="=>"{print $3"@"$4} $2=="mod"{print $3"@"$4} NR==1{split($0,a,": "); sub(/^go/,"",a[2]); print "stdlib@" a[2]}' "$GT/go-binary.app-go$v.txt" | sort -u > "$C/gt-go$v"
  run "go$v" "dir:$T/go-binary/bin"
  vq "go$v" 'select(.ecosystem=="Go" and ((.locations[0]//"")|endswith("app-go'$v'")))|"\(.name)@\(.version)"' go >/dev/null
  cmp "go-binary go$v" "$C/go$v.go" "$C/gt-go$v"
done
echo "# java: groupId:artifactId@version"
awk -F'\t' 'NR>1{print $2":"$3"@"$4}' "$GT/java.tsv" | sort -u > "$C/gt.java"
{ cat "$C/gt.java"; echo "com.example.bench:bench-app@0.0.1"; } | sort -u > "$C/gt-dir.java"
run java-dir "dir:$T/java"; cmp "java-dir maven" "$(vq java-dir 'select(.ecosystem=="Maven")|"\(.name)@\(.version)"' java)" "$C/gt-dir.java"
run function-java "archive:$T/function-java.zip"; cmp "function-java maven" "$(vq function-java 'select(.ecosystem=="Maven")|"\(.name)@\(.version)"' java)" "$C/gt.java"
echo "# rpm: name-epoch:version-release"
awk -F'\t' 'NR>1{print $1"-"$2":"$3"-"$4}' "$GT/rpmdb.tsv" | sort -u > "$C/gt.rpm"
run rpmdb "dir:$T/rpm-root-sqlite"
cmp "rpm-root-sqlite rpm" "$(vq rpmdb '(.version|capture("^((?<e>[0-9]+):)?(?<v>.*)-(?<r>[^-]+)$")) as $m|"\(.name)-\($m.e//"0"):\($m.v)-\($m.r)"' rpm)" "$C/gt.rpm"
exit $bad
