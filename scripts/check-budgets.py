#!/usr/bin/env python3
"""Checks criterion's results against benches/budgets.toml; exits 1 naming each row over budget.

Run the benches first, on a quiet machine (not in CI, where the benches only build):

    cargo bench -p stockade-benches
    scripts/check-budgets.py            # reads target/criterion

Each row of budgets.toml names a criterion group (`group`, else the `bench` name), a subject
and a peer (function ids within the group). Where the benches take a parameter (the module of
the vet bench), every parameter the subject was measured with is checked against the peer's
figure for the same parameter. `max-ratio` bounds subject / peer on the median estimate;
`max-time` bounds the subject's median alone. A row whose figures are missing is an error:
a budget that is not measured is not kept.
"""
import argparse
import json
import pathlib
import re
import sys
import tomllib

UNITS = {"ns": 1, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9}


def duration_ns(text: str) -> float:
    match = re.fullmatch(r"\s*([0-9.]+)\s*([a-zµ]+)\s*", text)
    if not match or match.group(2) not in UNITS:
        raise ValueError(f"`{text}` is not a duration such as 50us")
    return float(match.group(1)) * UNITS[match.group(2)]


def results(root: pathlib.Path) -> dict:
    """(group, function, parameter) -> median in ns, from each benchmark's newest run."""
    found = {}
    for meta in root.glob("**/new/benchmark.json"):
        info = json.loads(meta.read_text())
        estimates = json.loads((meta.parent / "estimates.json").read_text())
        key = (info["group_id"], info.get("function_id"), info.get("value_str"))
        found[key] = estimates["median"]["point_estimate"]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = pathlib.Path(__file__).resolve().parent.parent
    parser.add_argument("--budgets", type=pathlib.Path, default=root / "benches/budgets.toml")
    parser.add_argument("--criterion", type=pathlib.Path, default=root / "target/criterion")
    args = parser.parse_args()
    try:
        budgets = tomllib.loads(args.budgets.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        print(f"error: {args.budgets}: {error}", file=sys.stderr)
        return 2
    measured = results(args.criterion)
    problems, checked = [], 0
    for name, row in budgets.items():
        group = row.get("group", row["bench"])
        subjects = {param: ns for (g, f, param), ns in measured.items() if g == group and f == row["subject"]}
        if not subjects:
            problems.append(f"[{name}]: no results for `{group}/{row['subject']}` (run `cargo bench -p stockade-benches --bench {row['bench']}`)")
            continue
        for param, ns in sorted(subjects.items(), key=lambda item: str(item[0])):
            label = f"[{name}] {group}/{row['subject']}" + (f"/{param}" if param else "")
            if "max-time" in row:
                checked += 1
                bound = duration_ns(row["max-time"])
                verdict = "over" if ns > bound else "ok"
                print(f"{verdict:4} {label}: {ns:,.0f} ns (max {row['max-time']})")
                if ns > bound:
                    problems.append(f"{label}: {ns:,.0f} ns, over its max-time {row['max-time']}")
            if "max-ratio" in row:
                peer = measured.get((group, row["peer"], param))
                if peer is None:
                    problems.append(f"{label}: no result for the peer `{row['peer']}`" + (f"/{param}" if param else ""))
                    continue
                checked += 1
                ratio = ns / peer
                verdict = "over" if ratio > row["max-ratio"] else "ok"
                print(f"{verdict:4} {label}: {ratio:.2f}x {row['peer']} (max {row['max-ratio']}x)")
                if ratio > row["max-ratio"]:
                    problems.append(f"{label}: {ratio:.2f}x {row['peer']}, over its max-ratio {row['max-ratio']}")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    print(f"{checked} figures checked, {len(problems)} over budget or missing")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
