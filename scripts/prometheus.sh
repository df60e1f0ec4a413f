#!/usr/bin/env bash
# prometheus.sh — find (or install, with apt, as scripts/pg.sh installs PostgreSQL) the Prometheus
# server and promtool used by the rule tests and the dashboard query check.
#
#   scripts/prometheus.sh promtool     print promtool's path last on stdout
#   scripts/prometheus.sh prometheus   print the prometheus server's path last on stdout
#
# Everything except the path goes to stderr.
set -euo pipefail

log() { printf 'prometheus.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

want="${1:-promtool}"
case "$want" in promtool | prometheus) ;; *)
	echo "usage: $0 promtool|prometheus" >&2
	exit 2
	;;
esac

if ! command -v "$want" >/dev/null 2>&1; then
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 || die "$want is missing and I am not root and there is no sudo; install the 'prometheus' package"
		sudo="sudo"
	fi
	command -v apt-get >/dev/null 2>&1 || die "$want is missing and apt-get is missing; install Prometheus"
	log "$want not found; installing the 'prometheus' package with apt-get (one time)"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update >&2
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >&2
	command -v "$want" >/dev/null 2>&1 || die "$want still not found after installing it"
fi
command -v "$want"
