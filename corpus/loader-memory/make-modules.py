#!/usr/bin/env python3
"""Writes the modules of the loader-memory cases: sections of many tiny entries, each of which
once cost the loader (and wasmparser's validator) a record. Run from this directory; the output
is deterministic."""


def leb(n):
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def section(id, payload):
    return bytes([id]) + leb(len(payload)) + payload


def name(s):
    return leb(len(s)) + s.encode()


HEADER = b"\x00asm\x01\x00\x00\x00"
EMPTY_FUNC_TYPE = b"\x60\x00\x00"

# 200,000 custom sections with empty names and no data: three bytes each.
open("custom-section-flood/plugin.wasm", "wb").write(HEADER + b"\x00\x01\x00" * 200000)

# 20,000 function imports `e`.`N`, all of type () -> ().
N = 20000
imports = b"".join(name("e") + name(str(i)) + b"\x00\x00" for i in range(N))
open("import-flood/plugin.wasm", "wb").write(
    HEADER + section(1, leb(1) + EMPTY_FUNC_TYPE) + section(2, leb(N) + imports)
)

# One function exported under 20,000 names.
exports = b"".join(name("x%d" % i) + b"\x00\x00" for i in range(N))
open("export-flood/plugin.wasm", "wb").write(
    HEADER
    + section(1, leb(1) + EMPTY_FUNC_TYPE)
    + section(3, leb(1) + b"\x00")
    + section(7, leb(N) + exports)
    + section(10, leb(1) + leb(2) + b"\x00\x0b")
)

# 30,000 function types (i32) -> ().
T = 30000
open("type-flood/plugin.wasm", "wb").write(HEADER + section(1, leb(T) + b"\x60\x01\x7f\x00" * T))
