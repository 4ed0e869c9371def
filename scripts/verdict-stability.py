#!/usr/bin/env python3
"""Runs the bundled corpus several times while a cargo build runs beside it, and checks that
every run gives the same verdict for every case (issue 9: stable verdicts on a busy machine).

  scripts/verdict-stability.py [--runs 10] [--binary target/release/stockade] [--no-build]

The build beside it is a release build of the workspace into a fresh target directory, so it
compiles wasmtime from scratch for the whole time; it is started 20 s before the first run and
killed after the last. Prints each run's time and worst figures, and exits 1 when any verdict
differs between runs or any run fails.
"""
import argparse, json, os, shutil, signal, subprocess, sys, tempfile, time

parser = argparse.ArgumentParser()
parser.add_argument("--runs", type=int, default=10)
parser.add_argument("--binary", default="target/release/stockade")
parser.add_argument("--no-build", action="store_true", help="no build beside the runs (a quiet baseline)")
args = parser.parse_args()

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(root)
work = tempfile.mkdtemp(prefix="stockade-stability-")
build = None
try:
    if not args.no_build:
        build = subprocess.Popen(
            ["cargo", "build", "--release", "--workspace", "--target-dir", os.path.join(work, "target")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(20)
    verdicts = []
    for run in range(1, args.runs + 1):
        if build is not None and build.poll() is not None:
            sys.exit(f"run {run}: the build beside the runs ended (status {build.returncode}); nothing is busy any more")
        report = os.path.join(work, f"run{run}")
        started = time.monotonic()
        status = subprocess.run([args.binary, "conform", "--report-dir", report], stdout=subprocess.DEVNULL).returncode
        took = time.monotonic() - started
        doc = json.load(open(os.path.join(report, "conformance.json")))
        cases = doc["cases"]
        verdicts.append({c["id"]: c["verdict"] for c in cases})
        after = max((s.get("cpu_after_deadline_ms") or 0, c["id"]) for c in cases for s in c["steps"])
        margin = min((c["host"]["rss_bound_bytes"] - c["host"]["peak_rss_bytes"], c["id"]) for c in cases)
        load = os.getloadavg()[0]
        print(f"run {run}: exit {status}, {took:.1f} s, load {load:.1f}, "
              f"{doc['summary']['passed']} passed {doc['summary']['failed']} failed; "
              f"most CPU after a deadline {after[0]:.1f} ms ({after[1]}); "
              f"least RSS headroom {margin[0] / 2**20:.1f} MiB ({margin[1]})", flush=True)
        for c in cases:
            if c["verdict"] in ("fail", "xpass"):
                print(f"  {c['id']}: {'; '.join(c['problems'])}")
    differing = sorted(i for i in verdicts[0] if len({v.get(i) for v in verdicts}) > 1)
    for case in differing:
        print(f"verdicts differ: {case}: {[v.get(case) for v in verdicts]}")
    failed = any(v in ("fail", "xpass") for run in verdicts for v in run.values())
    print(f"{args.runs} runs, {len(verdicts[0])} cases: " + ("identical verdicts" if not differing else f"{len(differing)} cases differ")
          + (", some failed" if failed else ""))
    sys.exit(1 if differing or failed else 0)
finally:
    if build is not None and build.poll() is None:
        os.killpg(build.pid, signal.SIGKILL)
        build.wait()
    shutil.rmtree(work, ignore_errors=True)
