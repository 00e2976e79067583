#!/usr/bin/env bash
# server-scale.sh — the server's scale figures from its Go benchmarks (the server issue's targets):
#   re-evaluation over a synthetic fleet of HOSTS hosts × 500 packages (real Debian, npm, PyPI names; default 10000):
#     BenchmarkFeedDelta1000        a feed delta of 1,000 advisories          (goal <= 2 s)
#     BenchmarkAdvisoryOnePercent   one advisory affecting 1% of hosts        (goal <= 100 ms)
#     BenchmarkUnchangedResubmit    an unchanged inventory resubmitted        (goal <= 2 ms)
#   the store (SQLite; PostgreSQL with PG=1, using a throwaway cluster, with jit=off set on the
#   database as docs/status.md recommends; VIGIL_BENCH_PG_DEFAULTS=1 keeps PostgreSQL's defaults):
#     BenchmarkListFindings         listing with filters over FINDINGS findings (goal p99 <= 50 ms at 1,000,000)
#     BenchmarkPutInventoryNoOp     the store's share of an unchanged resubmission
# Large fleets need memory (10,000 hosts: ~3 GB) and minutes; start with HOSTS=2000 FINDINGS=200000.
# The same figures through the real API, on SQLite and PostgreSQL: bench/server-api.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
HOSTS=${HOSTS:-10000}; FINDINGS=${FINDINGS:-1000000}
echo "# $(date -u +%FT%TZ), $(nproc) cores, $HOSTS hosts, $FINDINGS findings"
VIGIL_BENCH_HOSTS=$HOSTS go test -run XXX -bench 'FeedDelta1000|AdvisoryOnePercent|UnchangedResubmit|EngineMemory' \
  -benchtime 3x -timeout 60m ./server/reeval/
VIGIL_BENCH_FINDINGS=$FINDINGS VIGIL_BENCH_POSTGRES=${PG:-0} go test -run XXX -bench 'ListFindings|PutInventoryNoOp' \
  -benchtime 20x -timeout 60m ./server/store/
