#!/usr/bin/env bash
# Rebuilds the example pipeline's plugins with ordinary toolchains and embeds each manifest
# (stockade annotate), so a module carries its own name and version. The built modules are
# committed: running the example needs no wasm toolchain.
# Needs: rustup target add wasm32-unknown-unknown; Node.js with npm; a built stockade
# (cargo build --release -p stockade).
set -euo pipefail
cd "$(dirname "$0")"
stockade=${STOCKADE:-../../../target/release/stockade}
(cd plugins-src && cargo build --release --target wasm32-unknown-unknown)
wasm=plugins-src/target/wasm32-unknown-unknown/release
mkdir -p plugins/parse plugins/constfold plugins/lint plugins/codegen
"$stockade" annotate $wasm/parse.wasm --manifest manifests/parse.toml -o plugins/parse/plugin.wasm
"$stockade" annotate $wasm/constfold.wasm --manifest manifests/constfold.toml -o plugins/constfold/plugin.wasm
"$stockade" annotate $wasm/codegen.wasm --manifest manifests/codegen.toml -o plugins/codegen/plugin.wasm
# The version the example hot-reloads to, kept outside plugins/ so it is not loaded at start.
(cd plugins-src && cargo build --release --target wasm32-unknown-unknown -p constfold --features v2)
"$stockade" annotate $wasm/constfold.wasm --manifest manifests/constfold-v2.toml -o constfold-v2.wasm
(cd plugins-src/lint-as && npm ci --no-audit --no-fund && npm run build)
"$stockade" annotate plugins-src/lint-as/lint.wasm --manifest manifests/lint.toml -o plugins/lint/plugin.wasm
ls -l plugins/*/plugin.wasm constfold-v2.wasm
