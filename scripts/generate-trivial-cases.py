#!/usr/bin/env python3
"""Writes N trivial conformance cases for measuring `stockade conform` throughput.

Each case is a distinct core module (its export's name differs, so nothing is shared through
the compiled-module cache) with one export and one call expecting `42`:

    scripts/generate-trivial-cases.py 1000 /tmp/trivial
    stockade conform /tmp/trivial --jobs 1 --out /tmp/trivial-report
"""
import argparse
import pathlib
import shutil


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("count", type=int)
    parser.add_argument("dir", type=pathlib.Path)
    args = parser.parse_args()
    if args.dir.exists():
        shutil.rmtree(args.dir)
    for n in range(args.count):
        case = args.dir / "trivial" / f"case-{n:05}"
        case.mkdir(parents=True)
        (case / "plugin.wat").write_text(
            f'(module (func (export "answer_{n}") (result i32) (i32.add (i32.const {40 - n % 7}) (i32.const {2 + n % 7}))))\n'
        )
        (case / "case.toml").write_text(
            'class = "benign"\n'
            f'description = "Trivial case {n}: one export that returns 42."\n'
            "[[call]]\n"
            f'function = "answer_{n}"\n'
            'expect = "ok"\n'
            'output = "42"\n'
        )


if __name__ == "__main__":
    main()
