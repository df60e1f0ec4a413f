#!/usr/bin/env bash
# chromium.sh — makes sure Debian's Chromium is installed (the browser tests drive it headless) and prints
# the path of its binary as the last line of stdout.
#
# Installs the `chromium` package with apt-get when no `chromium` is on PATH (needs root, like scripts/pg.sh).
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "chromium is not installed and installing it needs root: apt-get install chromium" >&2
		exit 1
	fi
	echo "installing chromium with apt-get (one time)" >&2
	export DEBIAN_FRONTEND=noninteractive
	# Another apt run (a parallel set-up) holds the lock for a while: wait for it.
	apt-get -o DPkg::Lock::Timeout=600 update >&2
	apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends chromium >&2
fi

command -v chromium
