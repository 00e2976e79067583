#!/usr/bin/env bash
# agent-idle.sh — vigil-agent's CPU while idle (the agent issue's "idle CPU near zero"): a real
# `vigil server` on loopback, one agent enrolled and running with 60-second heartbeats over a root
# whose package database does not change. After SETTLE (the start-up collection and first upload),
# the agent's utime+stime from /proc/PID/stat is read over IDLE and reported as % of one core,
# with its RSS. The collection interval is the default 30 min, so no collection falls inside.
#   IDLE=300 SETTLE=30 bench/agent-idle.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
IDLE=${IDLE:-300}; SETTLE=${SETTLE:-30}
work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done; rm -rf "$work"; }
trap cleanup EXIT
(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/vigil" ./cmd/vigil \
  && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/vigil-agent" ./cmd/vigil-agent)
root=$work/root
if [[ -f "$T/rootfs-bookworm/var/lib/dpkg/status" ]]; then
  mkdir -p "$root/var/lib/dpkg" "$root/etc"; cp "$T/rootfs-bookworm/var/lib/dpkg/status" "$root/var/lib/dpkg/"
  cp "$T/rootfs-bookworm/etc/os-release" "$root/etc/" 2>/dev/null || cp -L "$T/rootfs-bookworm/usr/lib/os-release" "$root/etc/os-release"
else # this machine's package database, copied so nothing changes under the agent
  mkdir -p "$root/var/lib/dpkg" "$root/etc"; cp /var/lib/dpkg/status "$root/var/lib/dpkg/"; cp -L /etc/os-release "$root/etc/"
fi
echo idle-host >"$root/etc/hostname"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$work/vigil" server --data-dir "$work/data" --listen "127.0.0.1:$port" --update-every 0 >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q 'serving https://' "$work/server.log" && break; sleep 0.2; done
export VIGIL_SERVER=https://127.0.0.1:$port
export VIGIL_API_KEY=$(grep -o 'vgl_[a-z0-9_]*' "$work/server.log" | head -1)
export VIGIL_CA_FINGERPRINT=$(grep -o 'sha256:[0-9a-f]\{64\}' "$work/server.log" | head -1)
token=$("$work/vigil" tokens create --name idle | tr -d '[:space:]')
"$work/vigil-agent" enroll --server "$VIGIL_SERVER" --token "$token" --ca-fingerprint "$VIGIL_CA_FINGERPRINT" \
  --root "$root" --state-dir "$work/state" >/dev/null
"$work/vigil-agent" run --root "$root" --state-dir "$work/state" >"$work/agent.log" 2>&1 &
apid=$!; pids+=($apid)
cpu() { awk '{s=substr($0, index($0, ")")+2); split(s, f, " "); print f[12]+f[13]}' "/proc/$1/stat"; }
sleep "$SETTLE"
hz=$(getconf CLK_TCK); c0=$(cpu $apid); t0=$(date +%s.%N)
sleep "$IDLE"
c1=$(cpu $apid); t1=$(date +%s.%N)
rss=$(awk '/VmRSS/{print $2}' /proc/$apid/status); hwm=$(awk '/VmHWM/{print $2}' /proc/$apid/status)
hb=$(grep -c heartbeat "$work/server.log" || true)
awk -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v hz="$hz" -v rss="$rss" -v hwm="$hwm" -v settle="$SETTLE" 'BEGIN{
  cpu=(c1-c0)/hz; wall=t1-t0;
  printf "idle agent over %.0f s (after %d s settling): %.2f s CPU (user+sys) = %.3f%% of a core; RSS %.1f MB (peak %.1f MB)\n",
    wall, settle, cpu, 100*cpu/wall, rss/1024, hwm/1024 }'
echo "(CPU ticks are 1/$hz s: the figure is exact to +-$(awk -v hz="$hz" -v i="$IDLE" 'BEGIN{printf "%.3f", 100/hz/i}')% of a core)"
