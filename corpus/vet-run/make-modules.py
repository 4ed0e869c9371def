#!/usr/bin/env python3
"""Writes the binary module of the vet-run case that would be unwieldy as text:
many-globals/plugin.wasm (70,000 globals). Run from this directory; the output is
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
open("many-globals/plugin.wasm", "wb").write(many_globals)
