#!/usr/bin/env bash
# agent-scale.sh — one `vigil server` (SQLite, this machine) holding AGENTS simulated agents with
# 60-second heartbeats and their inventory uploads (the agent issue's scale target: 5,000 agents on
# 2 cores). bench/cmd/agentload enrolls each agent for real (join token, its own key and CSR, its
# own client certificate, mutual TLS 1.3 through agent/client), then measures three phases apart:
# enrollment, the initial full uploads (spread over one heartbeat period) and STEADY of heartbeats
# and uploads (every UPLOAD_EVERY per agent, DELTA of them with a changed package, the rest
# unchanged). It prints latency percentiles, errors, the server's CPU and RSS from /proc, and the
# generator's own CPU (it shares the machine's cores with the server).
#   AGENTS=5000 STEADY=5m UPLOAD_EVERY=5m DELTA=0.1 PACKAGES=400 ROOT=/ bench/agent-scale.sh
# ROOT defaults to the bench corpus's rootfs-bookworm when it exists, else / (collected with the
# os-packages sensor); PACKAGES caps the base inventory (0: all).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
AGENTS=${AGENTS:-5000}; STEADY=${STEADY:-5m}; UPLOAD_EVERY=${UPLOAD_EVERY:-5m}; DELTA=${DELTA:-0.1}
PACKAGES=${PACKAGES:-400}; CONC=${CONC:-16}
if [[ -z "${ROOT_FS:-}" ]]; then
  ROOT_FS=/; [[ -f "$T/rootfs-bookworm/var/lib/dpkg/status" ]] && ROOT_FS=$T/rootfs-bookworm
fi
work=$(mktemp -d); srv_pid=
cleanup() { [[ -n "$srv_pid" ]] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/vigil" ./cmd/vigil \
  && CGO_ENABLED=0 go build -trimpath -o "$work/agentload" ./bench/cmd/agentload)

# A small Debian tracker (real CVEs of bookworm's openssl and curl) so uploads are matched.
mkdir -p "$work/mirror/debian"
cat >"$work/mirror/debian/tracker.json" <<'EOF'
{"openssl": {"CVE-2023-5678": {"description": "slow X9.42 DH key checks", "scope": "local",
   "releases": {"bookworm": {"status": "resolved", "repositories": {"bookworm": "3.0.11-1~deb12u2"}, "fixed_version": "3.0.13-1~deb12u1", "urgency": "low"}}}},
 "curl": {"CVE-2024-2398": {"description": "HTTP/2 push headers memory leak", "scope": "remote",
   "releases": {"bookworm": {"status": "resolved", "repositories": {"bookworm": "7.88.1-10+deb12u5"}, "fixed_version": "7.88.1-10+deb12u6", "urgency": "medium"}}}}}
EOF
"$work/vigil" db import --db "$work/data/vulndb.sqlite" "$work/mirror" >/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$work/vigil" server --data-dir "$work/data" --listen "127.0.0.1:$port" --update-every 0 >"$work/server.log" 2>&1 &
srv_pid=$!
for _ in $(seq 100); do grep -q 'serving https://' "$work/server.log" && break; sleep 0.2; done
key=$(grep -o 'vgl_[a-z0-9_]*' "$work/server.log" | head -1)
fp=$(grep -o 'sha256:[0-9a-f]\{64\}' "$work/server.log" | head -1)
export VIGIL_SERVER=https://127.0.0.1:$port VIGIL_API_KEY=$key VIGIL_CA_FINGERPRINT=$fp
token=$("$work/vigil" tokens create --name agentload --max-uses "$AGENTS" | tr -d '[:space:]')

echo "# $(date -u +%FT%TZ), $(nproc) cores (server and generator share them), $AGENTS agents, steady $STEADY," \
  "uploads every $UPLOAD_EVERY per agent ($DELTA deltas), base inventory from $ROOT_FS (PACKAGES=$PACKAGES)"
start=$(date +%s)
"$work/agentload" --server "$VIGIL_SERVER" --token "$token" --ca-fingerprint "$fp" --server-pid "$srv_pid" \
  --agents "$AGENTS" --duration "$STEADY" --upload-every "$UPLOAD_EVERY" --delta-fraction "$DELTA" \
  --root "$ROOT_FS" --packages "$PACKAGES" --enroll-concurrency "$CONC" --json "${JSON:-$work/agentload.json}"
echo "total run: $(( $(date +%s) - start )) s"
"$work/vigil" agents list 2>/dev/null | awk 'NR>1{n[$0 ~ /ONLINE/ ? "ONLINE" : "other"]++} END{printf "agents list: %d ONLINE, %d other\n", n["ONLINE"], n["other"]}'
# The server logs JSON; 429s of the enrollment burst are expected (one client address), and so are
# 503s of uploads refused for load (retried by the agents).
grep -E '"level":"(ERROR|WARN)"' "$work/server.log" | grep -v '"status":429' | sed -E 's/"time":"[^"]*",//; s/"request_id":"[^"]*",//; s/"(duration|bytes)":[0-9]*,//g; s/from 127[^:]*:[0-9]+/from .../; s/->127[^:]*:[0-9]+//' |
  cut -c1-200 | sort | uniq -c | sort -rn | head -8 | sed 's/^/server log: /' || true
echo "goals: 5,000 agents on one server on 2 cores, 60 s heartbeats; report heartbeat/upload p50/p95/p99, server CPU and RSS"
