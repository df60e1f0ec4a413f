#!/usr/bin/env bash
# run.sh — what `make run` executes (after `make build`): a local callqueue with everything it
# needs, a demo admin token and a demo integration, and a banner that says how to poke at it.
#
# Local state lives in ${CALLQUEUE_DATA_DIR:-./data}: the Postgres cluster, the secret key and
# the demo token. `rm -rf data` starts over from scratch. Extra arguments go to `callqueue serve`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin="./bin/callqueue"
data_dir="${CALLQUEUE_DATA_DIR:-./data}"
export CALLQUEUE_LOG_FORMAT="${CALLQUEUE_LOG_FORMAT:-console}" # humans read this output
# The local demo may point integrations at services on this machine (a VA or CRM under test).
export CALLQUEUE_ALLOW_PRIVATE_EGRESS="${CALLQUEUE_ALLOW_PRIVATE_EGRESS:-true}"

say() { printf 'run.sh: %s\n' "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}

[ -x "$bin" ] || die "$bin is missing; use 'make run' (it builds first)"
command -v curl >/dev/null 2>&1 || die "curl is required"
mkdir -p "$data_dir"

# --- Postgres: the throwaway local cluster unless the caller brought a database.
if [ -z "${DATABASE_URL:-}" ]; then
	DATABASE_URL="$(scripts/pg.sh start | tail -n1)"
fi
export DATABASE_URL

# persisted_random FILE BYTES prints the random value kept in FILE (base64 of BYTES random bytes,
# made on first use, readable by the owner only).
persisted_random() {
	if [ ! -s "$1" ]; then
		say "generating $1"
		(
			umask 077
			head -c "$2" /dev/urandom | base64 | tr -d '\n' >"$1.tmp"
			mv "$1.tmp" "$1"
		)
	fi
	cat "$1"
}

# --- Secret key: persisted, because secrets stored with one key cannot be read with another.
if [ -z "${CALLQUEUE_SECRET_KEY:-}" ]; then
	CALLQUEUE_SECRET_KEY="$(persisted_random "$data_dir/secret.key" 32)"
fi
export CALLQUEUE_SECRET_KEY

# --- Metrics token: /metrics lists every tenant's integration ids, so even the demo protects it.
# Persisted like the key, so that a Prometheus pointed at the demo keeps scraping across runs.
if [ -z "${CALLQUEUE_METRICS_TOKEN:-}" ]; then
	CALLQUEUE_METRICS_TOKEN="$(persisted_random "$data_dir/metrics.token" 24)"
fi
export CALLQUEUE_METRICS_TOKEN

# --- Schema.
"$bin" migrate up

# --- Demo admin token, created once and reused.
token_file="$data_dir/demo-token"
new_token() {
	local t
	t="$("$bin" token create --owner demo --name demo | tail -n1)"
	[ -n "$t" ] || die "'callqueue token create' printed no token"
	(
		umask 077
		printf '%s\n' "$t" >"$token_file"
	)
}
if [ ! -s "$token_file" ]; then
	say "creating the demo admin token"
	new_token
fi
token="$(cat "$token_file")"

# --- Serve in the background so we can set up the demo once it is ready, but keep `make run`
# in the foreground: signals are forwarded and we exit with serve's own exit code.
# set -m gives serve its own process group, so a terminal Ctrl-C reaches it once (from us),
# not twice (a second SIGINT often means "stop now, skip the graceful shutdown").
stopping=0
set -m
"$bin" serve "$@" &
serve_pid=$!
set +m
# shellcheck disable=SC2317 # invoked from the traps below
forward() {
	stopping=1
	kill "-$1" "$serve_pid" 2>/dev/null || true
}
trap 'forward INT' INT
trap 'forward TERM' TERM
trap 'forward HUP' HUP

# Waits for serve and exits with its code; `wait` also returns early when a trapped signal
# arrives, so keep waiting until the process is really gone.
finish() {
	local rc=0
	while :; do
		wait "$serve_pid" && rc=0 || rc=$?
		kill -0 "$serve_pid" 2>/dev/null || break
	done
	exit "$rc"
}

addr="${CALLQUEUE_HTTP_ADDR:-:8080}"
port="${addr##*:}"
host="${addr%:*}"
case "$host" in "" | 0.0.0.0 | "[::]" | "::") host="127.0.0.1" ;; esac
base="http://${host}:${port}"

# --- Wait for /readyz (Postgres and JetStream answer).
ready=0
for _ in $(seq 1 120); do
	[ "$stopping" -eq 0 ] || finish
	kill -0 "$serve_pid" 2>/dev/null || finish # serve died during startup: report its code
	code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$base/readyz" || true)"
	if [ "$code" = "200" ]; then
		ready=1
		break
	fi
	sleep 0.5
done
if [ "$ready" -ne 1 ]; then
	say "warning: $base/readyz did not answer 200 within 60s; skipping the demo setup"
	finish
fi

# --- Demo integration through the admin API (CONTRACT §3).

# api METHOD PATH [BODY]: prints the body, then the HTTP status on its own last line.
api() {
	local args=(-s -X "$1" -H "Authorization: Bearer $token" -H 'Accept: application/json' --max-time 10 -w '\n%{http_code}')
	[ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data "$3")
	curl "${args[@]}" "$base$2" || printf '\n000'
}

# pick_demo reads a JSON integration, or an array of them, on stdin and prints
# "id<TAB>slug<TAB>webhookToken" of the one named exactly "demo" (search matches substrings).
# python3 when present; else a sed fallback, good enough for these flat objects.
pick_demo() {
	if command -v python3 >/dev/null 2>&1; then
		python3 -c '
import json, sys
doc = json.load(sys.stdin)
for it in (doc if isinstance(doc, list) else [doc]):
    if isinstance(it, dict) and it.get("name") == "demo":
        print("%s\t%s\t%s" % (it.get("id", ""), it.get("slug", ""), it.get("webhookToken", "")))
        break
'
		return
	fi
	local obj
	obj="$(tr -d '\n' | sed 's/},[[:space:]]*{/}\n{/g' | grep -E '"name"[[:space:]]*:[[:space:]]*"demo"[[:space:]]*[,}]' | head -n1 || true)"
	[ -n "$obj" ] || return 0
	field() { printf '%s' "$obj" | sed -nE "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"?([^\",}]*)\"?.*/\\1/p"; }
	printf '%s\t%s\t%s\n' "$(field id)" "$(field slug)" "$(field webhookToken)"
}

setup_demo() {
	local out status body
	out="$(api GET '/api/integrations?search=demo')"
	status="${out##*$'\n'}"
	body="${out%$'\n'*}"
	if [ "$status" = "401" ]; then
		# The token belongs to another database (DATABASE_URL changed, or the DB was reset).
		say "the saved demo token is not accepted; creating a new one"
		new_token
		token="$(cat "$token_file")"
		out="$(api GET '/api/integrations?search=demo')"
		status="${out##*$'\n'}"
		body="${out%$'\n'*}"
	fi
	[ "$status" = "200" ] || {
		say "GET /api/integrations answered $status: $body"
		return 1
	}
	demo="$(printf '%s' "$body" | pick_demo || true)"
	if [ -z "$demo" ]; then
		out="$(api POST /api/integrations '{"name":"demo"}')"
		status="${out##*$'\n'}"
		body="${out%$'\n'*}"
		[ "$status" = "201" ] || [ "$status" = "200" ] || {
			say "POST /api/integrations answered $status: $body"
			return 1
		}
		demo="$(printf '%s' "$body" | pick_demo || true)"
	fi
	[ -n "$demo" ] || {
		say "could not read the demo integration from: $body"
		return 1
	}
	configure_demo
}

# The simulated dialler (CONTRACT §5) plays every call as a voice platform would, so the demo
# dials without any account: a limit of 3, 10x faster than real time, short retry delays so that
# retries and failures show within a minute. Only a demo that is not yet configured is touched:
# what the user changed since is left alone.
demo_voice='{"provider":"simulator","answer":0.6,"short":0.1,"no_answer":0.2,"busy":0.1,"talk_secs":[20,120],"ring_secs":[2,8],"speed":10}'
demo_call_handling='{"concurrency_limit":3,"min_call_duration_secs":5,"max_attempts":2,"retry_delays_secs":[15],"max_call_duration_secs":300}'
configure_demo() {
	local id out status kv
	id="${demo%%$'\t'*}"
	out="$(api GET "/api/integrations/$id")"
	status="${out##*$'\n'}"
	[ "$status" = "200" ] || {
		say "GET /api/integrations/$id answered $status"
		return 1
	}
	case "${out%$'\n'*}" in
	*'"status":"not_configured"'* | *'"status": "not_configured"'*) ;;
	*) return 0 ;;
	esac
	say "configuring the demo integration: simulated dialler, limit 3, speed 10"
	for kv in "call_handling:$demo_call_handling" "voice:$demo_voice"; do
		out="$(api PUT "/api/integrations/$id/config/${kv%%:*}" "${kv#*:}")"
		status="${out##*$'\n'}"
		[ "$status" = "200" ] || {
			say "PUT config/${kv%%:*} answered $status: ${out%$'\n'*}"
			return 1
		}
	done
}

demo=""
if [ "$stopping" -eq 0 ] && setup_demo; then
	IFS=$'\t' read -r demo_id demo_slug demo_wt <<<"$demo"
	cat <<EOF

================================================================================
 callqueue is running                       (Ctrl-C stops it; state in $data_dir)
--------------------------------------------------------------------------------
 base URL        $base
 metrics         $base/metrics
                 (curl -H 'Authorization: Bearer $CALLQUEUE_METRICS_TOKEN' $base/metrics)
 readiness       $base/readyz
 admin token     $token
                 (curl -H 'Authorization: Bearer $token' $base/api/integrations)
 demo integration
   id            $demo_id
   slug          $demo_slug
   webhookToken  $demo_wt
 webhooks
   $base/$demo_slug/webhook/call-originate
   $base/$demo_slug/webhook/call-events
   $base/$demo_slug/webhook/agent-init
   $base/$demo_slug/webhook/agent-postcall
 API reference   $base/api/docs   and   $base/$demo_slug/docs
 admin console   $base/admin/   (sign in with the admin token above)

 The demo integration dials through the simulator (limit 3, 10x real time): paste
 this to queue 20 calls,
   r=\$(date +%s); for i in \$(seq -w 1 20); do curl -sS -X POST '$base/$demo_slug/webhook/call-originate' -H 'X-Webhook-Token: $demo_wt' -H 'Content-Type: application/json' -d "{\"phone_number\":\"+3805000000\$i\",\"record_id\":\"demo-\$r-\$i\"}"; echo; done
 and this to watch them go (Ctrl-C stops watching):
   while :; do curl -sS -H 'Authorization: Bearer $token' '$base/api/integrations/$demo_id/stats'; echo; sleep 2; done
 Each call's history: curl -sS -H 'Authorization: Bearer $token' '$base/api/calls?integrationId=$demo_id'
================================================================================

EOF
else
	[ "$stopping" -ne 0 ] || say "warning: demo setup failed; the service keeps running (admin token: $token)"
fi

finish
