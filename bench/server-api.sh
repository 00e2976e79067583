#!/usr/bin/env bash
# server-api.sh — the server issue's scale figures through the real HTTP API (TLS 1.3, API keys),
# on SQLite and on PostgreSQL. bench/cmd/fleetload starts the server in-process (app.New, as
# `vigil server` does), loads a synthetic fleet of HOSTS hosts × 500 packages (bench/fleet: real
# Debian bookworm, npm and PyPI names and versions; real OSV PyPI advisories, synthetic Debian and
# npm ones) through PUT /v1/resources/host/{id}/inventory, and prints each figure against its goal:
#   first load (every host new) · unchanged resubmission server time (goal <= 2 ms) ·
#   sustained submissions/s, unchanged only and 90% unchanged / 9% changed / 1% new (goal >= 500/s) ·
#   feed delta of 1,000 modified advisories (goal <= 2 s) · one new advisory on ~1% of hosts
#   (goal <= 100 ms) · listing findings with filters, p99 (goal <= 50 ms) · the store's floor for
#   the delta (one bare UPDATE of the finding rows it changed, rolled back) · restart time.
# CPU figures are the process's (server + load generator), with PostgreSQL's processes added for
# the PostgreSQL run: on a shared machine they separate work from waiting; wall figures need an
# idle machine.
#
# PostgreSQL runs as an ephemeral cluster in a temp dir (initdb/pg_ctl, Unix socket only) with
# settings any operator may use: shared_buffers=6GB (a quarter of the machine's 24 GiB, PostgreSQL's
# own starting advice; at 1GB the 2.3 M findings' indexes did not stay in memory and every write
# read pages back from the kernel), synchronous_commit=off (a crash may lose the last few hundred ms
# of commits, never corrupts), max_wal_size=8GB, checkpoint_timeout=15min, jit=off (JIT compilation
# costs more than the short listing queries it would speed up). fsync stays on.
#
#   HOSTS=10000 CLIENTS=16 PHASE_SECONDS=30 STORES="sqlite postgres" bench/server-api.sh
# FLEETLOAD_ARGS go to bench/cmd/fleetload, e.g. "-cpuprofile /tmp/one.prof -profile-phase one".
# A 10,000-host load writes ~2.3 M findings (~9 GB of SQLite); it takes tens of minutes per store.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
HOSTS=${HOSTS:-10000}; CLIENTS=${CLIENTS:-16}; FLEETLOAD_ARGS=${FLEETLOAD_ARGS:-}; PHASE_SECONDS=${PHASE_SECONDS:-30}; STORES=${STORES:-"sqlite postgres"}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vigil-server-api.XXXXXX")
PGDATA=""
cleanup() {
  if [ -n "$PGDATA" ] && [ -f "$PGDATA/postmaster.pid" ]; then pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

echo "# server-api.sh $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $HOSTS hosts, $CLIENTS clients, $(git rev-parse --short HEAD 2>/dev/null)"
go build -o "$WORK/fleetload" ./bench/cmd/fleetload
for store in $STORES; do
  echo "## $store"
  case $store in
  sqlite)
    "$WORK/fleetload" -dir "$WORK/sqlite" -hosts "$HOSTS" -clients "$CLIENTS" -seconds "$PHASE_SECONDS" $FLEETLOAD_ARGS
    rm -rf "$WORK/sqlite" ;;
  postgres)
    PGBIN=${VIGIL_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
    mkdir -p "$WORK/pg"; [ "$(id -u)" = 0 ] && chown postgres "$WORK/pg" && chmod 755 "$WORK"
    PGDATA=$WORK/pg/data
    pg "$PGBIN/initdb" -D "$PGDATA" -U vigil -A trust -E UTF8 --locale=C >/dev/null
    pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/pg/log" -w -o "-c listen_addresses='' -k $WORK/pg -c max_connections=100 \
      -c shared_buffers=6GB -c synchronous_commit=off -c max_wal_size=8GB -c checkpoint_timeout=15min \
      -c jit=off" start >/dev/null
    pg "$PGBIN/createdb" -h "$WORK/pg" -U vigil vigil
    "$WORK/fleetload" -dir "$WORK/pgdir" -postgres "postgres://vigil@/vigil?host=$WORK/pg" -postmaster-pid "$PGDATA/postmaster.pid" -hosts "$HOSTS" -clients "$CLIENTS" -seconds "$PHASE_SECONDS" $FLEETLOAD_ARGS
    pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null; PGDATA=""
    rm -rf "$WORK/pg" "$WORK/pgdir" ;;
  *) echo "unknown store $store" >&2; exit 2 ;;
  esac
done
