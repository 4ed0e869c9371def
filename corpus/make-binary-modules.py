#!/usr/bin/env python3
"""Writes the corpus's binary modules that would be unwieldy as text: vet-run/many-globals
(70,000 globals) and the loader-memory cases (sections of many tiny entries, each of which once
cost the loader and wasmparser's validator a record). Run from corpus/; the output is
deterministic."""


def leb(n):
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def sleb(n):
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        if (n == 0 and not b & 0x40) or (n == -1 and b & 0x40):
            return out + bytes([b])
        out += bytes([b | 0x80])


def section(id, payload):
    return bytes([id]) + leb(len(payload)) + payload


def name(s):
    return leb(len(s)) + s.encode()


HEADER = b"\x00asm\x01\x00\x00\x00"
EMPTY_FUNC_TYPE = b"\x60\x00\x00"

# 70,000 mutable i32 globals (global i = i), a memory, and `run` returning global 69,999.
N = 70000
globals_ = b"".join(b"\x7f\x01\x41" + sleb(i) + b"\x0b" for i in range(N))
body = b"\x00" + b"\x23" + leb(N - 1) + b"\x0b"
many_globals = (
    HEADER
    + section(1, leb(1) + b"\x60\x00\x01\x7f")
    + section(3, leb(1) + leb(0))
    + section(5, leb(1) + b"\x00\x01")
    + section(6, leb(N) + globals_)
    + section(7, leb(2) + name("memory") + b"\x02\x00" + name("run") + b"\x00\x00")
    + section(10, leb(1) + leb(len(body)) + body)
)
open("vet-run/many-globals/plugin.wasm", "wb").write(many_globals)

# 200,000 custom sections with empty names and no data: three bytes each.
open("loader-memory/custom-section-flood/plugin.wasm", "wb").write(HEADER + b"\x00\x01\x00" * 200000)

# 20,000 function imports `e`.`N`, all of type () -> ().
N = 20000
imports = b"".join(name("e") + name(str(i)) + b"\x00\x00" for i in range(N))
open("loader-memory/import-flood/plugin.wasm", "wb").write(
    HEADER + section(1, leb(1) + EMPTY_FUNC_TYPE) + section(2, leb(N) + imports)
)

# One function exported under 20,000 names.
exports = b"".join(name("x%d" % i) + b"\x00\x00" for i in range(N))
open("loader-memory/export-flood/plugin.wasm", "wb").write(
    HEADER
    + section(1, leb(1) + EMPTY_FUNC_TYPE)
    + section(3, leb(1) + b"\x00")
    + section(7, leb(N) + exports)
    + section(10, leb(1) + leb(2) + b"\x00\x0b")
)

# 30,000 function types (i32) -> ().
T = 30000
open("loader-memory/type-flood/plugin.wasm", "wb").write(HEADER + section(1, leb(T) + b"\x60\x01\x7f\x00" * T))

# 1,000,000 immutable i32 globals (i32.const 0): past every policy's `globals` (at most 100,000).
G = 1000000
open("loader-memory/global-flood/plugin.wasm", "wb").write(
    HEADER + section(6, leb(G) + b"\x7f\x00\x41\x00\x0b" * G)
)

# 100,000 passive data segments of one byte each: past the default `segments` (10,000).
D = 100000
open("loader-memory/data-segment-flood/plugin.wasm", "wb").write(
    HEADER + section(12, leb(D)) + section(11, leb(D) + b"\x01\x01\x00" * D)
)

# 100,000 passive element segments of no functions (funcref, by index): likewise.
open("loader-memory/element-segment-flood/plugin.wasm", "wb").write(
    HEADER + section(9, leb(D) + b"\x01\x00\x00" * D)
)

# 5,000 functions of 50,000 i32 locals each (40 KB): Winch took 970 MB compiling them before
# locals counted in the compile budget.
F = 5000
local_body = leb(1) + leb(50000) + b"\x7f" + b"\x0b"
open("compile/many-functions-of-many-locals/plugin.wasm", "wb").write(
    HEADER
    + section(1, leb(1) + EMPTY_FUNC_TYPE)
    + section(3, leb(F) + b"\x00" * F)
    + section(10, leb(F) + (leb(len(local_body)) + local_body) * F)
)
