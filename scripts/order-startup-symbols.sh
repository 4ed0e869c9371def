#!/usr/bin/env bash
# Writes runner/link/startup-order.txt: the functions of the `stockade` binary that a cached
# `run`, a `vet` and a conformance worker execute, in that order, for the linker to place
# first (see runner/build.rs). Run it after a change that moves much code, then rebuild: a
# dependency upgrade renames every function of that crate, and a change to the stockade
# package's own dependencies renames every function of Stockade's (their hashes include the
# crate's metadata); with half the list stale, a cached run took 6% longer.
#
#     cargo build --release -p stockade && scripts/order-startup-symbols.sh
#
# Needs valgrind. Each command runs once under callgrind, which lists every function executed.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/stockade
[[ -x $bin ]] || { echo "build first: cargo build --release -p stockade" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
greet=corpus/guests/extism-greet/extism-greet.wasm
grind() { valgrind --tool=callgrind --demangle=no --smc-check=all --trace-children=yes \
    --callgrind-out-file="$work/$1.%p.out" "${@:2}" >/dev/null 2>&1 || true; }

# The cache is filled under valgrind first: it reports other CPU features than the machine,
# so an artifact compiled outside it would not load inside it.
valgrind --tool=none "$bin" run "$greet" --call greet --input world --cache-dir "$work/cache" \
    --compiler cranelift >/dev/null 2>&1
grind 1-run "$bin" run "$greet" --call greet --input world --cache-dir "$work/cache"
grind 2-vet "$bin" vet "$greet" corpus/guests/compute/compute.wasm
grind 3-vet "$bin" vet corpus/guests/wasi-hello/wasi-hello.wasm
scripts/generate-trivial-cases.py 3 "$work/trivial" >/dev/null
grind 4-conform "$bin" conform --corpus "$work/trivial" --jobs 1 --report-dir "$work/report"

python3 - "$work" > runner/link/startup-order.txt <<'PY'
import collections, pathlib, re, sys

def functions(path):
    """The functions executed in the binary's own code, in the order callgrind met them."""
    names, objects, current = {}, {}, None
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if m := re.match(r"^(c?ob)=\((\d+)\)(?: (.*))?$", line):
            kind, id, name = m.groups()
            if name:
                objects[id] = name
            if kind == "ob":
                current = objects.get(id)
        elif m := re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line):
            kind, id, name = m.groups()
            if name:
                names[id] = name
            if kind == "fn" and current and current.endswith("/stockade") and names.get(id):
                # callgrind marks recursion levels with 'N; the symbol is the same.
                yield re.sub(r"'\d+$", "", names[id])

ordered = collections.OrderedDict()
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.out")):
    for name in functions(path):
        ordered.setdefault(name, None)
print("\n".join(ordered))
PY
echo "runner/link/startup-order.txt: $(wc -l < runner/link/startup-order.txt) functions" >&2
