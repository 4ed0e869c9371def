#!/usr/bin/env bash
# Rebuilds the guest plugins and copies each .wasm beside its source.
# Needs: rustup target add wasm32-wasip1 wasm32-unknown-unknown; Node.js with npm (AssemblyScript).
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --target wasm32-wasip1 -p wasi-hello
cargo build --release --target wasm32-unknown-unknown -p extism-greet -p compute -p compute-core
cp target/wasm32-wasip1/release/wasi-hello.wasm wasi-hello/wasi-hello.wasm
cp target/wasm32-unknown-unknown/release/extism_greet.wasm extism-greet/extism-greet.wasm
cp target/wasm32-unknown-unknown/release/compute.wasm compute/compute.wasm
cp target/wasm32-unknown-unknown/release/compute_core.wasm compute-core/compute-core.wasm
# AssemblyScript with the official @extism/as-pdk, versions pinned in package-lock.json.
(cd as-vowels && npm ci --no-audit --no-fund && npm run build)
ls -l */*.wasm
