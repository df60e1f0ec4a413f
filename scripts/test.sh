#!/usr/bin/env bash
# test.sh — what `make test` runs: the whole suite against a real Postgres, with the race detector.
#
# Uses $DATABASE_URL when set, else the throwaway local cluster of scripts/pg.sh, which it stops
# afterwards when it was the one that started it; $CALLQUEUE_CHROMIUM when set, else Debian's
# chromium (scripts/chromium.sh installs it).
# Extra `go test` flags come from $GOTESTFLAGS, e.g. GOTESTFLAGS='-run TestWebhook -v' make test;
# the packages from $TESTPKGS (default ./...).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ -z "${DATABASE_URL:-}" ]; then
	if ! scripts/pg.sh status >/dev/null; then
		trap 'scripts/pg.sh stop >/dev/null 2>&1 || true' EXIT
	fi
	DATABASE_URL="$(scripts/pg.sh start | tail -n1)"
fi
export DATABASE_URL

# The admin console's browser tests drive a headless Chromium (installed when missing).
if [ -z "${CALLQUEUE_CHROMIUM:-}" ]; then
	CALLQUEUE_CHROMIUM="$(scripts/chromium.sh | tail -n1)"
fi
export CALLQUEUE_CHROMIUM

# GOTESTFLAGS and TESTPKGS are lists: word splitting is intended.
# shellcheck disable=SC2086
go test -race -count=1 -timeout 20m ${GOTESTFLAGS:-} ${TESTPKGS:-./...}
