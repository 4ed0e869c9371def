#!/usr/bin/env python3
"""Runs every attack of runner/tests/fixtures/attacks/attacks.toml against a stockade binary
and prints, per attack, what an operator would see from outside the process: the outcome, the
wall time, the peak RSS (wait4) and the bytes printed. Use it to compare two builds:

    scripts/measure-attacks.py target/release/stockade
    scripts/measure-attacks.py /path/to/older/stockade --default-policy /path/to/older/policies/default.toml

A run that outlives --timeout seconds is killed and reported as such. Each attack's policy is
the attack's keys over policies/default.toml, written to a temporary file."""

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def merge(base, over):
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


def dump(policy):
    lines = []
    for table, values in policy.items():
        lines.append(f"[{table}]")
        lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


class Server:
    """A loopback server that misbehaves like the corpus's: /hang, /trickle, /chunked-forever."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.stop = False
        threading.Thread(target=self.accept, daemon=True).start()

    def authority(self):
        return "127.0.0.1:%d" % self.sock.getsockname()[1]

    def accept(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    def answer(self, conn):
        started = time.time()
        going = lambda: not self.stop and time.time() - started < 30
        try:
            request = conn.recv(65536).decode(errors="replace")
            path = request.split(" ")[1] if " " in request else "/"
            if path == "/hang":
                while going():
                    time.sleep(0.02)
            elif path == "/trickle":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n")
                while going():
                    conn.sendall(b"x")
                    time.sleep(0.05)
            elif path == "/chunked-forever":
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
                chunk = b"400\r\n" + b"y" * 0x400 + b"\r\n"
                while going():
                    conn.sendall(chunk)
            else:
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        except OSError:
            pass
        finally:
            conn.close()


FILE_SIZE_CAP = 256 << 20


def cap_file_size():
    """Disk-fill attacks run under an outside cap: no file of the child may pass 256 MiB
    (a write past it fails with EFBIG rather than killing the child)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_CAP, FILE_SIZE_CAP))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def run(binary, args, limit):
    started = time.monotonic()
    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen(
            [binary] + args,
            stdout=out,
            stderr=subprocess.DEVNULL,
            env=dict(os.environ, NO_COLOR="1"),
            preexec_fn=cap_file_size,
        )
        killed = False
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - started > limit:
                child.send_signal(signal.SIGKILL)
                killed = True
                pid, status, usage = os.wait4(child.pid, 0)
                break
            time.sleep(0.005)
        wall = time.monotonic() - started
        out.seek(0)
        printed = out.read()
    return wall, usage.ru_maxrss * 1024, printed, killed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary")
    parser.add_argument("--timeout", type=float, default=30, help="kill a run after this many seconds")
    parser.add_argument(
        "--default-policy",
        default=os.path.join(ROOT, "policies/default.toml"),
        help="the policy the attacks' keys are merged over (an older build needs its own)",
    )
    opts = parser.parse_args()
    with open(os.path.join(ROOT, "runner/tests/fixtures/attacks/attacks.toml"), "rb") as f:
        attacks = tomllib.load(f)["attack"]
    with open(opts.default_policy, "rb") as f:
        default = tomllib.load(f)
    server = Server()
    print("| attack | outcome | wall | peak RSS | printed (JSON) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for attack in attacks:
        with tempfile.TemporaryDirectory() as scratch:
            fill = lambda text: text.replace("{scratch}", scratch).replace("{http}", server.authority())
            if attack.get("fifo"):
                os.mkfifo(os.path.join(scratch, attack["fifo"]))
            overrides = tomllib.loads(fill(attack["policy"]))
            # Keys an older build does not know (the disk quota) are left out for it.
            for table, values in overrides.items():
                for key in list(values):
                    if key not in default.get(table, {}):
                        del values[key]
            policy = merge(json.loads(json.dumps(default)), overrides)
            policy["policy"]["name"] = "attack"
            policy_path = os.path.join(scratch, "policy.toml")
            with open(policy_path, "w") as f:
                f.write(dump(policy))
            args = ["run", os.path.join(ROOT, attack["module"]), "--call", attack["function"], "--policy", policy_path, "--format", "json"]
            if attack.get("input"):
                args += ["--input", fill(attack["input"])]
            wall, rss, printed, killed = run(opts.binary, args, opts.timeout)
            try:
                outcome = json.loads(printed)["outcome"]
            except (ValueError, KeyError):
                outcome = "(no JSON)"
            if killed:
                outcome = f"killed after {opts.timeout:.0f} s"
            print(f"| {attack['name']} | {outcome} | {wall * 1000:.0f} ms | {rss / 2**20:.0f} MiB | {len(printed)} B |")
            sys.stdout.flush()
    server.stop = True


if __name__ == "__main__":
    main()
