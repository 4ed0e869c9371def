#!/usr/bin/env bash
# Installs what checks the conformance reports the way their readers will:
# - the official SARIF multitool (Microsoft, npm) that validates SARIF against the 2.1.0 schema;
# - Debian's Chromium, to render the HTML report headless and take a screenshot.
# Both land outside the repository's sources: the multitool under target/tools, Chromium as a
# system package. tests/conform.rs uses them; with STOCKADE_REPORT_TOOLS=1 it fails rather
# than skips when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

tools=target/tools
if [ ! -x "$tools/node_modules/.bin/sarif-multitool-linux" ]; then
  mkdir -p "$tools"
  npm install --prefix "$tools" --no-audit --no-fund --no-save @microsoft/sarif-multitool-linux@5.7.0 >/dev/null
fi
echo "sarif-multitool: $tools/node_modules/.bin/sarif-multitool-linux"

if ! command -v chromium >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
echo "chromium: $(command -v chromium)"
