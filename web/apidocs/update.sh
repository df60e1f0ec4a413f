#!/usr/bin/env bash
# update.sh VERSION — replaces the vendored Swagger UI (swagger-ui/) with swagger-ui-dist@VERSION
# from the npm registry. Needs npm only here: building callqueue needs no Node.
#
#   npm view swagger-ui-dist version     # the latest release
#   web/apidocs/update.sh 5.35.0
#
# Then run the browser test (go test ./service/ -run TestAPIDocsInBrowser) and commit swagger-ui/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
version="${1:?usage: update.sh VERSION (see: npm view swagger-ui-dist version)}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "swagger-ui-dist@$version" >/dev/null && tar xzf swagger-ui-dist-*.tgz)
pkg="$tmp/package"
mkdir -p swagger-ui
# Compressed once here, served as stored: the binary embeds ~0.5 MB instead of ~2 MB, and no
# request pays for gzip. The source-map comment is dropped: the maps are not shipped.
sed '/^\/\/# sourceMappingURL=/d' "$pkg/swagger-ui-bundle.js" | gzip -9n >swagger-ui/swagger-ui-bundle.js.gz
sed '/^\/\*# sourceMappingURL=/d' "$pkg/swagger-ui.css" | gzip -9n >swagger-ui/swagger-ui.css.gz
cp "$pkg/LICENSE" "$pkg/NOTICE" "$pkg/swagger-ui-bundle.js.LICENSE.txt" swagger-ui/
printf '%s\n' "$version" >swagger-ui/VERSION
echo "swagger-ui-dist $version vendored into $(pwd)/swagger-ui"
