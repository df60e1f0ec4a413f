#!/usr/bin/env bash
# update-uplot.sh VERSION — replaces the vendored uPlot (static/vendor/uplot/) with uplot@VERSION from the npm
# registry. Needs npm only here: building callqueue needs no Node.
#
#   npm view uplot version            # the latest release
#   web/admin/update-uplot.sh 1.6.32
#
# Then run the console's chart tests (go test ./web/admin/ -run TestCharts) and commit static/vendor/uplot/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/static/vendor/uplot"
version="${1:?usage: update.sh VERSION (see: npm view uplot version)}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "uplot@$version" >/dev/null && tar xzf uplot-*.tgz)
pkg="$tmp/package"
# The minified script (it defines the global uPlot) and its stylesheet; no source maps are shipped.
sed '/^\/\/# sourceMappingURL=/d' "$pkg/dist/uPlot.iife.min.js" >uPlot.iife.min.js
sed '/^\/\*# sourceMappingURL=/d' "$pkg/dist/uPlot.min.css" >uPlot.min.css
cp "$pkg/LICENSE" LICENSE
printf '%s\n' "$version" >VERSION
echo "uplot $version vendored into $(pwd)"
