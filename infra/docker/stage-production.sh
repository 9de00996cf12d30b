#!/bin/sh
# Stages the production install of a built checkout: `stage-production.sh SRC DEST`.
#
# Copies the root package files and every workspace's package.json, bin/ and dist/ (no
# sources, no tests) from SRC into DEST, then installs the production dependencies of
# @geosfu/node there from the lockfile (no dev dependencies, no install scripts). The image's
# build stage runs this, and so does test/integration/production-start.test.ts, so the test
# starts exactly what the image ships. Run `npm run build` in SRC first.
set -eu
[ $# -eq 2 ] || { echo "usage: $0 SRC DEST" >&2; exit 2; }
src=$(cd "$1" && pwd)
dest=$2
[ -f "$src/packages/node/dist/cli.js" ] || { echo "$src is not built: run npm run build there" >&2; exit 1; }
mkdir -p "$dest"
cp "$src/package.json" "$src/package-lock.json" "$dest/"
# npm ci needs every workspace of the lockfile present, even those it does not install.
for ws in $(node -p "require('$src/package.json').workspaces.join(' ')"); do
  mkdir -p "$dest/$ws"
  cp "$src/$ws/package.json" "$dest/$ws/"
  for part in bin dist; do
    if [ -d "$src/$ws/$part" ]; then cp -R "$src/$ws/$part" "$dest/$ws/"; fi
  done
done
# Source maps and declarations are not needed to run.
find "$dest" -path "$dest/node_modules" -prune -o \( -name '*.d.ts' -o -name '*.d.ts.map' -o -name '*.tsbuildinfo' \) -type f -exec rm -f {} +
cd "$dest"
npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --workspace @geosfu/node
