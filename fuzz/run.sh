#!/usr/bin/env bash
# Builds and runs a fuzz target: fuzz/run.sh [TARGET] [SECONDS]   (default: vet_bytes 60)
# Works on the stable toolchain: cargo-fuzz passes nightly -Z flags (sanitizers, coverage),
# which RUSTC_BOOTSTRAP=1 lets the stable compiler accept.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:-vet_bytes}
seconds=${2:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# Seeds: every fixture and guest module, so the fuzzer starts from real shapes.
mkdir -p "corpus/$target"
for f in ../runner/tests/fixtures/vet/*/plugin.wat ../corpus/guests/*/*.wasm; do
  cp "$f" "corpus/$target/$(echo "${f#../}" | tr / _)"
done
RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds"
