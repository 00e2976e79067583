# Shared helpers for Vigil's bench scripts. Source it; it sets BENCH, T (targets), GT (ground truth), VIGIL.
BENCH=${BENCH:-$HOME/vigil-bench}; T=$BENCH/targets; GT=$T/ground-truth
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VIGIL=${VIGIL:-$BENCH/bin/vigil}
VIGIL_SCAN=${VIGIL_SCAN:-$BENCH/bin/vigil-scan}
build_vigil() { # builds the vigil binary under test (trimmed, like a release), and its scan-only build
  (cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$VIGIL" ./cmd/vigil &&
    CGO_ENABLED=0 go build -tags scanonly -trimpath -ldflags="-s -w" -o "$VIGIL_SCAN" ./cmd/vigil)
}
# timeit OUTVAR CMD... : runs CMD under /usr/bin/time -v; sets OUTVAR_wall (s) and OUTVAR_rss (MB)
timeit() {
  local var=$1; shift; local tf; tf=$(mktemp)
  /usr/bin/time -v -o "$tf" "$@" >/dev/null 2>&1  # a non-zero status is normal for scanners that found something
  printf -v "${var}_wall" '%s' "$(awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; printf "%.3f", s}' "$tf")"
  printf -v "${var}_rss" '%s' "$(awk -F': ' '/Maximum resident/{printf "%.1f", $2/1024}' "$tf")"
  rm -f "$tf"
}
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
