#!/usr/bin/env bash
# chromium.sh — finds a headless-capable Chromium for the browser tests, installing Debian's
# `chromium` package when none is there, and prints the binary's path as the last line of stdout.
#
# Usage from tests and scripts:  CHROMIUM=$(scripts/chromium.sh | tail -1)
# Everything except the path goes to stderr for that reason. CHROMIUM, when set to an executable,
# is trusted and only printed.
set -euo pipefail

log() { printf 'chromium.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

find_chromium() {
	local c
	if [ -n "${CHROMIUM:-}" ] && [ -x "$CHROMIUM" ]; then
		echo "$CHROMIUM"
		return 0
	fi
	for c in chromium chromium-browser google-chrome-stable google-chrome headless-shell; do
		if command -v "$c" >/dev/null 2>&1; then
			command -v "$c"
			return 0
		fi
	done
	return 1
}

if path="$(find_chromium)"; then
	echo "$path"
	exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || die "Chromium is not installed and I am not root and there is no sudo; install the 'chromium' package or set CHROMIUM"
	sudo="sudo"
fi
command -v apt-get >/dev/null 2>&1 || die "Chromium is not installed and apt-get is missing; install Chromium or set CHROMIUM"
log "Chromium not found; installing Debian's chromium package with apt-get (one time)"
# apt's output goes to stderr: our stdout is reserved for the path. Another install running at the
# same time holds dpkg's lock: wait for it rather than fail.
$sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update >&2
$sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends chromium >&2
path="$(find_chromium)" || die "Chromium still not found after installing it"
echo "$path"
