#!/usr/bin/env bash
# bench.sh — what `make bench` runs: callqueue-bench, then the peers callqueue is compared with
# (bench/peers: River, a plain JetStream publisher, bare net/http) on the same Postgres and the
# same load generator, then the ratios between them, each a `metric:` line like the rest.
#
# Uses $DATABASE_URL when set, else the throwaway cluster of scripts/pg.sh. Flags for
# callqueue-bench come from $BENCH_FLAGS (e.g. BENCH_FLAGS='-duration 10s'), for the peers from
# $PEERS_FLAGS; PEERS=0 skips the peers (and the ratios).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ -z "${DATABASE_URL:-}" ]; then
	DATABASE_URL="$(scripts/pg.sh start | tail -n1)"
fi
export DATABASE_URL

out="$(mktemp)"
trap 'rm -f "$out"' EXIT

# shellcheck disable=SC2086 # flag lists: word splitting is intended
go run ./cmd/callqueue-bench ${BENCH_FLAGS:-} | tee "$out"
if [ "${PEERS:-1}" = 0 ]; then
	exit 0
fi
# shellcheck disable=SC2086
(cd bench/peers && go run . ${PEERS_FLAGS:-}) | tee -a "$out"

# ratio NAME NUMERATOR DENOMINATOR: printed when both were measured in this run.
ratio() {
	awk -v name="$1" -v num="$2" -v den="$3" '
		$1 == "metric:" && $2 == num { n = $3 }
		$1 == "metric:" && $2 == den { d = $3 }
		END { if (n != "" && d != "" && d > 0) printf "metric: %s %.2f x\n", name, n / d }' "$out"
}
ratio intake_vs_river intake_rps peer_river_intake_rps
ratio intake_vs_publish intake_rps peer_publish_intake_rps
ratio intake_vs_bare intake_rps peer_bare_rps
ratio agent_init_vs_peer_bare agent_init_rps peer_bare_rps
ratio e2e_vs_river e2e_events_per_s peer_river_events_per_s
