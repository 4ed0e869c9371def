#!/usr/bin/env bash
# Installs mdBook, which builds the documentation in docs/ (tests/docs.rs runs `mdbook build`).
# Built from crates.io at a pinned version into target/tools, so a second run finds it; with
# STOCKADE_MDBOOK=1 the test fails rather than skips when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.5.4
root=target/tools
if ! "$root/bin/mdbook" --version 2>/dev/null | grep -qx "mdbook v$version"; then
  cargo install mdbook --locked --version "$version" --root "$root" --quiet
fi
echo "mdbook: $root/bin/mdbook $("$root/bin/mdbook" --version)"
