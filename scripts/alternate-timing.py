#!/usr/bin/env python3
"""Times two whole commands run alternately (A B, B A, A B, ...), so that a machine whose speed
drifts moves both alike, and prints each one's median wall time and their ratio B/A, and the
median of the per-pair ratios. What the README's vet vs wasm-tools ratios were measured with.

Each time includes starting the process from Python (about a millisecond here), the same for
both, which pulls the ratio toward 1: for commands of a few milliseconds (a cached `run` beside
the extism crate's: 0.50x here where `hyperfine -N` read 0.39x) time with `hyperfine -N`.

    scripts/alternate-timing.py 21 "wasm-tools validate M" "target/release/stockade vet M"
"""
import shlex
import statistics
import subprocess
import sys
import time


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    runs, a, b = int(sys.argv[1]), shlex.split(sys.argv[2]), shlex.split(sys.argv[3])
    times = {0: [], 1: []}
    for i in range(runs):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for which in order:
            started = time.perf_counter()
            subprocess.run((a, b)[which], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            times[which].append(time.perf_counter() - started)
    ma, mb = statistics.median(times[0]), statistics.median(times[1])
    pairs = statistics.median(tb / ta for ta, tb in zip(times[0], times[1]))
    print(f"A {ma * 1e3:.2f} ms, B {mb * 1e3:.2f} ms: B/A {mb / ma:.3f} by medians, {pairs:.3f} median of pairs ({runs} runs each)")


if __name__ == "__main__":
    main()
