#!/bin/sh
# Refreshes the chat page's vendored libraries (edge/server/ui/static/vendor/) from the npm registry.
# The versions are pinned in package.json and locked, with their integrity hashes, in package-lock.json:
#   cd scripts/ui-vendor && npm install <name>@<version> --package-lock-only && ./update.sh
# The page loads these built files as they are; there is no build step.
set -eu
cd "$(dirname "$0")"
npm ci --ignore-scripts --no-audit --no-fund
modules=node_modules
out=../../edge/server/ui/static/vendor
mkdir -p "$out/licenses"
cp "$modules/marked/lib/marked.esm.js" "$out/marked.js"
cp "$modules/dompurify/dist/purify.es.mjs" "$out/purify.js"
cp "$modules/@highlightjs/cdn-assets/es/highlight.min.js" "$out/highlight.js"
cp "$modules/katex/dist/katex.mjs" "$out/katex.js"
# the source maps are not vendored: drop the comments that point at them
sed -i '/^\/\/# sourceMappingURL=/d' "$out"/*.js
cp "$modules/marked/LICENSE" "$out/licenses/marked-LICENSE"
cp "$modules/dompurify/LICENSE" "$out/licenses/dompurify-LICENSE"
cp "$modules/@highlightjs/cdn-assets/LICENSE" "$out/licenses/highlight.js-LICENSE"
cp "$modules/katex/LICENSE" "$out/licenses/katex-LICENSE"
node -e 'const l=require("./package-lock.json").packages; for (const [k,v] of Object.entries(l)) if (k) console.log(k.replace("node_modules/",""), v.version, v.integrity)' > "$out/VERSIONS"
rm -rf node_modules
echo "vendored into $out:" && cat "$out/VERSIONS"
