#!/usr/bin/env bash
# pg.sh — a throwaway local PostgreSQL cluster for development and tests.
#
#   scripts/pg.sh start    init (if needed) + start, wait until ready, print the URL last on stdout
#   scripts/pg.sh stop     stop it (no-op when stopped), then reap abandoned clusters (below)
#   scripts/pg.sh reap     stop and remove clusters whose checkout is gone
#   scripts/pg.sh status   exit 0 when running, 3 when stopped
#   scripts/pg.sh url      print the URL
#
# Usage from other scripts:  DATABASE_URL=$(scripts/pg.sh start | tail -1)
# Everything except the URL goes to stderr for that reason.
#
# Every data directory gets its own port, so checkouts side by side each run their own cluster:
# the port a cluster was created with is kept; a new cluster takes one derived from the data
# directory's path (20000-31999, below Linux's ephemeral range so that outgoing connections
# never hold it), moving up past ports that are taken.
#
# Environment: CALLQUEUE_DATA_DIR (default <repo>/data), CALLQUEUE_PG_PORT (forces a port),
# CALLQUEUE_PG_RELOCATE_DIR (default /var/tmp/callqueue-pg, see prepare_dirs).
# If DATABASE_URL is already set, `start` trusts it and only prints it.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
relocate_dir="${CALLQUEUE_PG_RELOCATE_DIR:-/var/tmp/callqueue-pg}"
relocate_dir="${relocate_dir%/}"
db_name="callqueue"
db_user="postgres"

# Absolute, because pg_ctl runs from another working directory (and as another user under root).
data_dir="${CALLQUEUE_DATA_DIR:-$repo_root/data}"
case "$data_dir" in
/*) ;;
*) data_dir="$PWD/${data_dir#./}" ;;
esac
data_dir="${data_dir%/}"
pg_root="$data_dir/pg"

# The port this data directory's cluster was configured with, if it has one.
configured_port() {
	local conf
	conf="$(readlink -f "$pg_root" 2>/dev/null || echo "$pg_root")/cluster/callqueue.conf"
	if [ -f "$conf" ]; then sed -nE 's/^port = ([0-9]+)$/\1/p' "$conf"; fi
}

# A port derived from the path, so two checkouts rarely start on the same one. It lies below
# the ephemeral range (32768-60999): a port in it can be bound by any outgoing connection's
# local end, which a connect test does not see, and the start then fails.
derived_port() {
	echo $((20000 + $(printf '%s' "$data_dir" | cksum | cut -d' ' -f1) % 12000))
}

port="${CALLQUEUE_PG_PORT:-$(configured_port)}"
port="${port:-$(derived_port)}"
set_url() { url="postgres://${db_user}@127.0.0.1:${port}/${db_name}?sslmode=disable"; }
set_url

log() { printf 'pg.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# PostgreSQL refuses to run as root, so under root the cluster belongs to the `postgres` OS user.
as_pg() {
	if is_root; then
		# cd / so postgres never trips over a working directory it may not read (e.g. under /root).
		if command -v runuser >/dev/null 2>&1; then
			(cd / && runuser -u postgres -- "$@")
		else
			(cd / && su -s /bin/sh postgres -c "$(printf '%q ' "$@")")
		fi
	else
		"$@"
	fi
}

# ---------------------------------------------------------------------------------------------
# Binaries
# ---------------------------------------------------------------------------------------------

find_bindir() {
	local d
	# pg_config may come from libpq-dev alone, so only trust it when the server is really there.
	if command -v pg_config >/dev/null 2>&1; then
		d="$(pg_config --bindir 2>/dev/null || true)"
		if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
			echo "$d"
			return 0
		fi
	fi
	# Debian's layout; the newest major version wins.
	d="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
	if [ -n "$d" ] && [ -x "$d/initdb" ]; then
		echo "$d"
		return 0
	fi
	if command -v initdb >/dev/null 2>&1; then
		dirname "$(command -v initdb)"
		return 0
	fi
	return 1
}

install_postgres() {
	local sudo=""
	if ! is_root; then
		command -v sudo >/dev/null 2>&1 || die "PostgreSQL is not installed and I am not root and there is no sudo; install the 'postgresql' package or set DATABASE_URL"
		sudo="sudo"
	fi
	command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and apt-get is missing; install PostgreSQL or set DATABASE_URL"
	log "PostgreSQL not found; installing it with apt-get (one time)"
	# stdout of apt goes to stderr: our stdout is reserved for the URL.
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update >&2
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >&2
}

bindir=""
resolve_bindir() {
	[ -n "$bindir" ] && return 0
	if ! bindir="$(find_bindir)"; then
		install_postgres
		bindir="$(find_bindir)" || die "PostgreSQL still not found after installing it"
	fi
}

pg_isready_bin() {
	if [ -n "$bindir" ] && [ -x "$bindir/pg_isready" ]; then echo "$bindir/pg_isready"; else echo pg_isready; fi
}

# ---------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------

# The cluster lives in $pg_root/cluster. Under root, if the `postgres` user cannot reach $pg_root
# (a checkout under a 0700 home, say), $pg_root becomes a symlink to a directory it can reach.
real_root="$pg_root"
cluster=""
sock_dir=""
logfile=""

set_paths() {
	if [ -L "$pg_root" ]; then
		real_root="$(readlink -f "$pg_root")"
	else
		real_root="$pg_root"
	fi
	cluster="$real_root/cluster"
	logfile="$real_root/log"
	sock_dir="$real_root/run"
	# A unix socket path must fit in 107 bytes; fall back to a short private dir when it does not.
	if [ $((${#sock_dir} + 20)) -gt 107 ]; then
		sock_dir="/tmp/callqueue-pg-$(id -u)-$port"
	fi
}

ensure_pg_user() {
	getent passwd postgres >/dev/null 2>&1 && return 0
	log "creating the 'postgres' system user"
	if getent group postgres >/dev/null 2>&1; then
		useradd --system --gid postgres --home-dir /var/lib/postgresql --shell /bin/bash postgres
	else
		useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
	fi
}

prepare_dirs() {
	mkdir -p "$data_dir"
	# A module of its own: `go ... ./...` then skips the directory instead of
	# walking a cluster whose files come and go as tests create databases.
	[ -e "$data_dir/go.mod" ] || printf 'module callqueue.invalid/data\n' >"$data_dir/go.mod"
	local fresh=0
	[ -e "$pg_root" ] || fresh=1
	if is_root; then
		ensure_pg_user
		chmod a+x "$data_dir" # postgres must traverse it; nothing in it is listed or read through this bit
		if [ -L "$pg_root" ]; then
			# Relocated on an earlier run (see below); the target may have been cleaned since.
			mkdir -p "$(readlink "$pg_root")"
		else
			mkdir -p "$pg_root"
			chown postgres:postgres "$pg_root"
		fi
		if [ ! -L "$pg_root" ] && ! as_pg test -w "$pg_root" 2>/dev/null; then
			# A parent directory is closed to the postgres user: keep the cluster elsewhere and
			# point $pg_root at it. Name it after the path so every checkout gets its own.
			local alt
			alt="$relocate_dir/$(printf '%s' "$pg_root" | cksum | cut -d' ' -f1)"
			log "postgres cannot reach $pg_root; keeping the cluster in $alt"
			rmdir "$pg_root"
			if [ "$fresh" -eq 1 ] && [ -d "$alt" ]; then
				# data/ was removed, so the user wants a fresh cluster (stop a leftover one first).
				real_root="$alt" cluster="$alt/cluster"
				stop_cluster_quietly
				rm -rf "$alt"
			fi
			mkdir -p "$alt"
			chmod 0755 "$relocate_dir"
			ln -s "$alt" "$pg_root"
		fi
		set_paths
		# Who the relocated cluster belongs to, so `reap` can tell when that checkout is gone.
		if [ -L "$pg_root" ]; then printf '%s\n' "$pg_root" >"$real_root/owner"; fi
		chown -R postgres:postgres "$real_root"
	else
		mkdir -p "$pg_root"
		set_paths
	fi
	mkdir -p "$sock_dir"
	chmod 0700 "$sock_dir"
	if is_root; then chown postgres:postgres "$sock_dir"; fi
}

# ---------------------------------------------------------------------------------------------
# Process state
# ---------------------------------------------------------------------------------------------

# Prints the PID of the postmaster that runs *this* cluster. A postmaster.pid alone proves
# nothing after a crash (the PID may belong to an unrelated process now), so we also check that
# the process' working directory is the cluster: the postmaster chdirs into its data directory.
our_pid() {
	local pid cwd
	[ -f "$cluster/postmaster.pid" ] || return 1
	pid="$(head -n1 "$cluster/postmaster.pid" 2>/dev/null || true)"
	case "$pid" in '' | *[!0-9]*) return 1 ;; esac
	if [ -d /proc/1 ]; then
		cwd="$(readlink "/proc/$pid/cwd" 2>/dev/null || true)"
		[ "$cwd" = "$(readlink -f "$cluster")" ] || return 1
	else
		kill -0 "$pid" 2>/dev/null || return 1
	fi
	echo "$pid"
}

# A postmaster whose data directory was deleted under it (rm -rf data while running) still holds
# the port for up to a minute. Its cwd reads "<dir> (deleted)"; find it by that exact path.
orphan_pids() {
	[ -d /proc/1 ] || return 0
	local p cwd
	for p in /proc/[0-9]*; do
		cwd="$(readlink "$p/cwd" 2>/dev/null || true)"
		[ "$cwd" = "$cluster (deleted)" ] || continue
		# Only the postmaster (started with -D); its children follow it down.
		tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -x -- '-D' >/dev/null && echo "${p#/proc/}"
	done
	return 0
}

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Keeps a forced or configured port (failing if it is taken: URLs handed out name it), and moves a
# derived one up past ports that other programs hold.
pick_port() {
	if [ -n "${CALLQUEUE_PG_PORT:-}" ] || [ -n "$(configured_port_written)" ]; then
		port_taken "$port" && die "something else already answers on 127.0.0.1:$port; stop it or set CALLQUEUE_PG_PORT"
		return 0
	fi
	local tries=0
	while port_taken "$port"; do
		tries=$((tries + 1))
		[ "$tries" -lt 50 ] || die "no free port near $(derived_port); set CALLQUEUE_PG_PORT"
		port=$((port + 1))
	done
	set_url
	set_paths
	mkdir -p "$sock_dir"
	chmod 0700 "$sock_dir"
	if is_root; then chown postgres:postgres "$sock_dir"; fi
}

# Non-empty when callqueue.conf already names a port (a cluster that started before).
configured_port_written() {
	if [ -f "$cluster/callqueue.conf" ]; then sed -nE 's/^port = ([0-9]+)$/\1/p' "$cluster/callqueue.conf"; fi
}

is_ready() {
	"$(pg_isready_bin)" -q -h 127.0.0.1 -p "$port" -U "$db_user" -d postgres -t 2 >/dev/null 2>&1
}

wait_ready() {
	for _ in $(seq 1 "${1:-60}"); do
		is_ready && return 0
		sleep 1
	done
	return 1
}

stop_cluster_quietly() {
	if [ -n "$bindir" ] && our_pid >/dev/null; then
		as_pg "$bindir/pg_ctl" -D "$cluster" -m fast -w -t 60 stop >&2 || true
	fi
}

kill_orphans() {
	local pid
	for pid in $(orphan_pids); do
		log "stopping orphaned postmaster $pid (its data directory was deleted)"
		kill -INT "$pid" 2>/dev/null || true
		for _ in $(seq 1 30); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.5
		done
		kill -QUIT "$pid" 2>/dev/null || true
	done
}

# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------

write_conf() {
	# Rewritten on every start so a changed port or socket dir takes effect.
	cat >"$cluster/callqueue.conf" <<EOF
# Managed by scripts/pg.sh; rewritten on every start.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sock_dir'
max_connections = 300
shared_buffers = 256MB
# Commits stay durable (fsync on) so that make bench measures what production would see;
# batching in the workers keeps the commit rate low.
logging_collector = off
log_min_messages = warning
timezone = 'UTC'
EOF
	if is_root; then chown postgres:postgres "$cluster/callqueue.conf"; fi
}

init_cluster() {
	log "initialising a new cluster in $cluster"
	rm -rf "$cluster"
	# --auth=trust: local sockets and 127.0.0.1 only, on a throwaway cluster.
	# Its chatter goes to a file and is shown only when it fails.
	if ! as_pg "$bindir/initdb" -D "$cluster" -U "$db_user" --auth=trust -E UTF8 --locale=C --no-sync \
		>"$real_root/initdb.log" 2>&1; then
		cat "$real_root/initdb.log" >&2
		die "initdb failed"
	fi
	echo "include 'callqueue.conf'" >>"$cluster/postgresql.conf"
}

cmd_start() {
	if [ -n "${DATABASE_URL:-}" ]; then
		log "DATABASE_URL is set; using it and not starting a local cluster"
		echo "$DATABASE_URL"
		return 0
	fi
	resolve_bindir
	mkdir -p "$data_dir"
	# Serialise concurrent starts (make run and make test at once).
	if command -v flock >/dev/null 2>&1; then
		exec 9>"$data_dir/.pg.lock"
		flock 9
	fi
	prepare_dirs

	if pid="$(our_pid)"; then
		if wait_ready 10; then
			log "already running (pid $pid)"
			ensure_db
			echo "$url"
			return 0
		fi
		log "running (pid $pid) but not answering on port $port; restarting"
		as_pg "$bindir/pg_ctl" -D "$cluster" -m fast -w -t 60 stop >&2 || true
	fi

	kill_orphans
	# No live postmaster for this cluster: any pid/lock file is left over from a crash. pg_ctl
	# copes with most of them, but not with a PID that was reused by a live process, so clear them.
	rm -f "$cluster/postmaster.pid" "$sock_dir"/.s.PGSQL."$port" "$sock_dir"/.s.PGSQL."$port".lock

	if [ -s "$cluster/PG_VERSION" ]; then
		# After a PostgreSQL major upgrade the old files cannot be started; the cluster is
		# throwaway, so start over rather than pg_upgrade.
		local have want
		have="$(cat "$cluster/PG_VERSION")"
		want="$("$bindir/pg_ctl" --version | sed -nE 's/^pg_ctl \(PostgreSQL\) ([0-9]+).*/\1/p')"
		if [ -n "$want" ] && [ "$have" != "$want" ]; then
			log "cluster is PostgreSQL $have but the binaries are $want; re-initialising"
			init_cluster
		fi
	else
		init_cluster
	fi
	pick_port
	write_conf

	log "starting PostgreSQL on 127.0.0.1:$port (log: $logfile)"
	# 9>&-: the postmaster must not inherit the lock, or it would hold it for its whole life.
	if ! as_pg "$bindir/pg_ctl" -D "$cluster" -l "$logfile" -w -t 60 start >&2 9>&-; then
		tail -n 30 "$logfile" >&2 || true
		die "pg_ctl start failed"
	fi
	wait_ready 60 || {
		tail -n 30 "$logfile" >&2 || true
		die "PostgreSQL did not become ready on port $port"
	}
	ensure_db
	echo "$url"
}

ensure_db() {
	local psql="$bindir/psql"
	[ -x "$psql" ] || psql="psql"
	local exists
	exists="$("$psql" -X -q -h 127.0.0.1 -p "$port" -U "$db_user" -d postgres -tAc \
		"select 1 from pg_database where datname = '$db_name'")"
	if [ "$exists" != "1" ]; then
		log "creating database $db_name"
		"$psql" -X -q -h 127.0.0.1 -p "$port" -U "$db_user" -d postgres -c "create database $db_name" >&2
	fi
}

cmd_stop() {
	set_paths
	if [ -d "$cluster" ]; then
		bindir="$(find_bindir)" || die "PostgreSQL binaries not found"
		if pid="$(our_pid)"; then
			log "stopping (pid $pid)"
			as_pg "$bindir/pg_ctl" -D "$cluster" -m fast -w -t 60 stop >&2
		else
			log "not running"
		fi
	else
		log "no cluster in $cluster"
	fi
	kill_orphans
	cmd_reap
}

# Stops and removes clusters whose checkout is gone: relocated ones whose owner no longer links
# to them, and postmasters whose data directory was deleted while they ran. Clusters of
# checkouts that still exist are never touched.
cmd_reap() {
	local dir owner pid p cwd
	for dir in "$relocate_dir"/*/; do
		[ -d "$dir" ] || continue
		dir="${dir%/}"
		owner="$(cat "$dir/owner" 2>/dev/null || true)"
		[ -n "$owner" ] || continue # from before owners were recorded: leave it alone
		[ "$(readlink -f "$owner" 2>/dev/null || true)" = "$(readlink -f "$dir")" ] && continue
		log "reaping the cluster in $dir: its checkout ($owner) is gone"
		(
			real_root="$dir" cluster="$dir/cluster"
			if pid="$(our_pid)"; then
				bindir="$(find_bindir)" || die "PostgreSQL binaries not found"
				as_pg "$bindir/pg_ctl" -D "$cluster" -m fast -w -t 60 stop >&2 || kill -QUIT "$pid" 2>/dev/null || true
			fi
		)
		rm -rf "$dir"
	done
	[ -d /proc/1 ] || return 0
	for p in /proc/[0-9]*; do
		cwd="$(readlink "$p/cwd" 2>/dev/null || true)"
		case "$cwd" in */pg/cluster" (deleted)" | "$relocate_dir"/*/cluster" (deleted)") ;; *) continue ;; esac
		tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -x -- '-D' >/dev/null || continue
		pid="${p#/proc/}"
		# Immediate shutdown: with its files gone there is nothing left to flush.
		log "stopping postmaster $pid: its data directory ${cwd% (deleted)} was deleted"
		kill -QUIT "$pid" 2>/dev/null || true
		for _ in $(seq 1 20); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.5
		done
	done
}

cmd_status() {
	set_paths
	if [ -d "$cluster" ] && pid="$(our_pid)"; then
		if is_ready; then
			echo "running: pid $pid, $url"
		else
			echo "running: pid $pid, not accepting connections on port $port yet"
		fi
		return 0
	fi
	echo "stopped"
	return 3
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
reap) cmd_reap ;;
status) cmd_status ;;
url) echo "$url" ;;
*)
	echo "usage: $0 start|stop|reap|status|url" >&2
	exit 2
	;;
esac
