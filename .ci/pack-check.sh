#!/usr/bin/env bash
# The package as it is published: `npm pack` (whose prepack builds dist/), then the tarball
# installed into an empty project, where it must
#   - ship dist/ with its types, LICENSE and README, and no source maps, sources or tests;
#   - bring no runtime dependency;
#   - serve from plain node through `import` (pack-check/consumer.mjs) and `require`
#     (pack-check/consumer.cjs, Node >= 20.19);
#   - typecheck a strict TypeScript consumer with skipLibCheck: false, under moduleResolution
#     nodenext (ESM and CommonJS files) and bundler, and run it once compiled.
# TypeScript and @types/node are the repo's own (node_modules/.bin/tsc and --typeRoots), so the
# check needs `npm ci` in the repo first and no network. Run by hand: bash .ci/pack-check.sh
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
here="$repo/.ci/pack-check"
tsc="$repo/node_modules/.bin/tsc"
types="$repo/node_modules/@types"
[[ -x "$tsc" && -d "$types/node" ]] || { echo "pack-check: run npm ci first (needs typescript and @types/node)" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/bare-session-pack.XXXXXX")"
[[ -n "${KEEP:-}" ]] && echo "pack-check: keeping $work" >&2 || trap 'rm -rf "$work"' EXIT
mkdir "$work/pack" "$work/app"

echo "== npm pack"
(cd "$repo" && npm pack --pack-destination "$work/pack" >&2)
tarball=("$work"/pack/bare-session-*.tgz)
[[ ${#tarball[@]} -eq 1 && -f "${tarball[0]}" ]] || { echo "pack-check: expected one tarball in $work/pack" >&2; exit 1; }
tarball="${tarball[0]}"

echo "== tarball contents"
contents="$(tar -tzf "$tarball" | sort)"
for f in package/package.json package/README.md package/LICENSE package/dist/index.js package/dist/index.d.ts; do
  grep -qx "$f" <<<"$contents" || { echo "pack-check: $f is missing from the tarball" >&2; exit 1; }
done
if grep -Ev '^package/(package\.json|README\.md|LICENSE|dist/([a-z-]+/)*[a-z-]+\.(js|d\.ts))$' <<<"$contents"; then
  echo "pack-check: the tarball holds files it should not (above)" >&2; exit 1
fi
echo "$(wc -l <<<"$contents") files, $(du -k "$tarball" | cut -f1) KiB"

echo "== install into an empty project"
cd "$work/app"
cat > package.json <<'JSON'
{ "name": "pack-check-consumer", "version": "1.0.0", "private": true, "type": "module" }
JSON
npm install --offline --no-audit --no-fund --no-save "$tarball"
installed="$(ls -A node_modules | grep -v '^\.package-lock\.json$')"
[[ "$installed" == "bare-session" ]] || { echo "pack-check: node_modules holds more than bare-session:" >&2; echo "$installed" >&2; exit 1; }
cp "$here"/consumer.mjs "$here"/consumer.cjs "$here"/consumer.ts "$here"/consumer-cjs.cts .

echo "== plain node"
node consumer.mjs
node consumer.cjs 2> require.err || { cat require.err >&2; exit 1; }
if [[ -s require.err ]]; then
  echo "pack-check: require('bare-session') wrote to stderr:" >&2; cat require.err >&2; exit 1
fi

echo "== typescript $("$tsc" --version)"
strict='"strict": true, "noUncheckedIndexedAccess": true, "exactOptionalPropertyTypes": true,
    "noImplicitOverride": true, "noImplicitReturns": true, "noPropertyAccessFromIndexSignature": true,
    "isolatedModules": true, "skipLibCheck": false, "target": "ES2022", "lib": ["ES2023"],
    "types": ["node"], "typeRoots": ["'"$types"'"]'
cat > tsconfig.json <<JSON
{
  "compilerOptions": {
    $strict,
    "module": "nodenext", "moduleResolution": "nodenext", "verbatimModuleSyntax": true,
    "outDir": "out"
  },
  "files": ["consumer.ts", "consumer-cjs.cts"]
}
JSON
cat > tsconfig.bundler.json <<JSON
{
  "compilerOptions": {
    $strict,
    "module": "preserve", "moduleResolution": "bundler", "noEmit": true
  },
  "files": ["consumer.ts"]
}
JSON
"$tsc" -p tsconfig.json
"$tsc" -p tsconfig.bundler.json
node out/consumer.js

echo "pack-check: $(basename "$tarball") installs, serves (import and require) and typechecks"
