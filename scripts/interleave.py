#!/usr/bin/env python3
"""Wall time of a command natively and under `ringfence ... do --`, interleaved.

    scripts/interleave.py [-n N] [--busy] [--cmd 'CMD ARGS'] 'RINGFENCE [FLAGS]' ...

Each argument after the options is a ringfence invocation up to `do` (a
binary and its global flags, with optional leading VAR=value settings);
the command (default `/usr/bin/python3 -c pass`) runs natively and under
each, N rounds in turn, and the medians are printed with their ratio to
native. `--busy` keeps one CPU busy with a spin loop meanwhile (a loaded
host). This is how the by-hand figures of BENCHMARKS.md were taken: builds
are compared in the same run, never across runs.
"""
import argparse
import os
import shlex
import statistics
import subprocess
import time


def settle():
    """Wait (200 ms at most) until no live `ringfence` process is left: on KVM a
    finished sandbox leaves a short-lived child that closes the VM, which
    must not run beside the next sample."""
    deadline = time.perf_counter() + 0.2
    while time.perf_counter() < deadline:
        busy = False
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        _, _, rest = f.read().partition(" (ringfence) ")
                        busy = busy or (rest != "" and not rest.startswith("Z"))
                except OSError:
                    pass
        if not busy:
            return
        time.sleep(0.0005)


def timed(argv, env=None):
    settle()
    t = time.perf_counter()
    subprocess.run(argv, env=env, check=False)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=11)
    ap.add_argument("--busy", action="store_true")
    ap.add_argument("--cmd", default="/usr/bin/python3 -c pass")
    ap.add_argument("ringfence", nargs="+")
    a = ap.parse_args()
    cmd = shlex.split(a.cmd)
    spin = subprocess.Popen(["sh", "-c", "while :; do :; done"]) if a.busy else None
    try:
        native, runs = [], {r: [] for r in a.ringfence}
        for _ in range(a.n):
            native.append(timed(cmd))
            for r in a.ringfence:
                words = shlex.split(r)
                env = dict(os.environ)
                while words and "=" in words[0] and not words[0].startswith("/"):
                    k, v = words.pop(0).split("=", 1)
                    env[k] = v
                runs[r].append(timed(words + ["do", "--"] + cmd, env))
    finally:
        if spin:
            spin.kill()
    base = statistics.median(native)
    print(f"native: median {base * 1e3:.2f} ms")
    for r, t in runs.items():
        m = statistics.median(t)
        print(f"{r}: median {m * 1e3:.2f} ms, {m / base:.2f}x native")


if __name__ == "__main__":
    main()
