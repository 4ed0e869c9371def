#!/usr/bin/env bash
# Installs WABT (Debian's wabt package): its wasm-validate is the independent validator that
# tests/robustness.rs and the fuzz target judge `vet` against (wasmtime's own validation is the
# same wasmparser as the loader's, and proves nothing). With STOCKADE_WABT=1 the test fails
# rather than skips when it is missing.
set -euo pipefail
if ! command -v wasm-validate >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends wabt >/dev/null
fi
echo "wasm-validate: $(command -v wasm-validate) $(wasm-validate --version)"
