#!/usr/bin/env bash
# Fetches real-world WebAssembly modules that nobody here wrote, from npm packages that ship
# them, into target/third-party-wasm/ (never committed). The test `third_party_modules` vets
# every module found there; CI runs this script first and sets STOCKADE_THIRD_PARTY_WASM=1 so
# that an empty directory fails the test instead of skipping it.
#
# The packages cover the toolchains a registry sees: Emscripten (sql.js, web-tree-sitter),
# wasm-bindgen (brotli-wasm, @resvg/resvg-wasm, @jsquash/png) and Go (esbuild-wasm).
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/third-party-wasm
packages=(
  sql.js@1.16.0
  web-tree-sitter@0.27.1
  brotli-wasm@3.0.1
  @resvg/resvg-wasm@2.6.2
  @jsquash/png@3.1.1
  esbuild-wasm@0.28.2
)
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for spec in "${packages[@]}"; do
  name=${spec%@*}
  dest="$out/${name//\//_}"
  if [ -d "$dest" ] && [ -n "$(ls -A "$dest")" ]; then
    continue
  fi
  (cd "$work" && npm pack --silent "$spec" >/dev/null 2>&1) || { echo "cannot fetch $spec" >&2; exit 1; }
  tarball=$(ls "$work"/*.tgz)
  mkdir -p "$work/x" "$dest"
  tar -xzf "$tarball" -C "$work/x"
  # Keep every .wasm, flattened, named after its path inside the package.
  while IFS= read -r -d '' file; do
    rel=${file#"$work/x/package/"}
    cp "$file" "$dest/${rel//\//_}"
  done < <(find "$work/x" -name '*.wasm' -print0)
  rm -rf "$work/x" "$tarball"
  echo "$spec: $(ls "$dest" | wc -l) module(s)"
done
