#!/usr/bin/env python3
"""Makes the signature cases' modules, keys and signatures with Stockade itself, the way a
registry would: `stockade keygen`, `stockade annotate` (src/plugin.wat with src/plugin.toml
embedded), `stockade sign`. Then the hostile copies: one byte of the code changed, one byte of the
embedded manifest changed, a stranger's signature. The private keys are thrown away; rerun only to
replace the keys, the committed files are what the cases use.

    corpus/signatures/make-signed-cases.py [path/to/stockade]   (default: target/release/stockade)
"""

import pathlib
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
STOCKADE = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "target/release/stockade").resolve()


def stockade(*args):
    subprocess.run([str(STOCKADE), *map(str, args)], check=True, stdout=subprocess.DEVNULL)


def sections(module):
    """(id, payload start, payload end, name) of each section of a binary module."""
    def leb(at):
        value, shift = 0, 0
        while True:
            byte = module[at]
            at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value, at
    at = 8
    while at < len(module):
        kind = module[at]
        size, start = leb(at + 1)
        name = None
        if kind == 0:
            length, name_at = leb(start)
            name = module[name_at:name_at + length].decode()
        yield kind, start, start + size, name
        at = start + size


def byte_changed(module, kind, name, old, new):
    """The module with the first `old` inside the section of `kind` (and `name`) made `new`."""
    for k, start, end, n in sections(module):
        if k == kind and (name is None or n == name):
            at = module.index(old, start, end)
            return module[:at] + new + module[at + len(old):]
    raise SystemExit(f"no section {kind} {name}")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        for who in ("registry", "stranger"):
            stockade("keygen", "--output-key-prefix", tmp / who)
        signed = tmp / "plugin.wasm"
        stockade("annotate", HERE / "src/plugin.wat", "--manifest", HERE / "src/plugin.toml", "-o", signed)
        stockade("sign", signed, "--key", tmp / "registry.key")
        module = signed.read_bytes()

        def case(name, body, signer="registry"):
            """A case directory's module and its signatures (made by `signer`)."""
            out = HERE / name
            for old in out.glob("plugin.wasm*"):
                old.unlink()
            (out / "plugin.wasm").write_bytes(body)
            source = signed if signer == "registry" else tmp / "stranger-signed.wasm"
            for suffix in (".sig", ".sigstore.json"):
                shutil.copy(source.with_name(source.name + suffix), out / ("plugin.wasm" + suffix))
            # Every case's policy trusts the registry's key, and only it.
            shutil.copy(tmp / "registry.pub", out / "registry.pub")

        stranger = tmp / "stranger-signed.wasm"
        stranger.write_bytes(module)
        stockade("sign", stranger, "--key", tmp / "stranger.key")

        case("signed-plugin", module)
        case("no-trusted-signer", module)
        # i32.const 7 made i32.const 8: still a valid module, not the one signed.
        case("code-changed", byte_changed(module, 10, None, b"\x41\x07", b"\x41\x08"))
        # "signed" made "signes" in the embedded manifest.
        case("manifest-changed", byte_changed(module, 0, "stockade.manifest", b'"signed"', b'"signes"'))
        case("wrong-key", module, signer="stranger")
        for unsigned in ("missing-signature", "tampered-signature"):
            shutil.copy(tmp / "registry.pub", HERE / unsigned / "registry.pub")


if __name__ == "__main__":
    main()
