#!/usr/bin/env python3
"""Prints the README's side-by-side table, per attack class, from committed conformance reports:

  scripts/peer-table.py reports/peers/stockade/conformance.json reports/peers/extism/conformance.json

Contained: the case passed (for another host, possibly stopped with its own codes: the report's
notes say which). Not contained: the case failed. N/A: the host cannot express the case.
"""
import json, sys

reports = [json.load(open(path)) for path in sys.argv[1:]]
names = [r["host"].split(" (")[0] for r in reports]
classes = sorted({c for r in reports for c in r["summary"]["classes"]})

def cell(report, cls):
    n = report["summary"]["classes"].get(cls)
    if n is None:
        return "–"
    contained = n["passed"] + n["xfail"]
    return f"{n['passed']} / {n['failed'] + n['xpass'] + n['xfail']} / {n['not_applicable']}"

print("| class | " + " | ".join(f"{n}: contained / not / n/a" for n in names) + " |")
print("|---|" + "---:|" * len(names))
for cls in classes:
    print(f"| `{cls}` | " + " | ".join(cell(r, cls) for r in reports) + " |")
totals = []
for r in reports:
    s = r["summary"]
    totals.append(f"**{s['passed']} / {s['failed'] + s['xpass'] + s['xfail']} / {s['not_applicable']}**")
print("| all | " + " | ".join(totals) + " |")
