#!/usr/bin/env python3
"""Runs each workload under plain lua5.3 and under `luamem run`, alternating, and prints median
wall time, the ratio, and peak RSS of both. Not a test: figures depend on the machine.

    python3 Benchmarks/compare.py [--runs 5] [--luamem .build/release/luamem] [--depth 1]
                                  [--sample 512KiB]

With --callgrind it counts instructions instead (valgrind --tool=callgrind), which repeats
exactly on a busy machine. valgrind cannot read this toolchain's DWARF 5, so that mode needs a
build without debug information:

    swift build -c release -Xswiftc -gnone -Xcc -g0 --build-path .build-nodebug --product luamem
    python3 Benchmarks/compare.py --callgrind --luamem .build-nodebug/release/luamem
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# Smaller sizes under callgrind, which runs programs about 50 times slower.
CALLGRIND_WORKLOADS = [
    ("binary-trees 12", "binary_trees.lua", ["12"]),
    ("string building", "string_building.lua", ["300"]),
    ("game tick", "game_tick.lua", ["3000"]),
]
WORKLOADS = [
    ("binary-trees 14", "binary_trees.lua", ["14"]),
    ("binary-trees 16", "binary_trees.lua", ["16"]),
    ("string building", "string_building.lua", []),
    ("game tick", "game_tick.lua", []),
]


def measure(command):
    """Wall seconds and peak RSS (KiB) of one run; output discarded, failure is fatal.

    The peak RSS comes from GNU time (/usr/bin/time, Debian package `time`): the rusage of a
    child forked by this Python process counts Python's own ~15 MiB before the exec, which
    hid the true size of small programs such as plain lua5.3 (2.4 MiB)."""
    with tempfile.NamedTemporaryFile(mode="r") as report:
        start = time.perf_counter()
        result = subprocess.run(["/usr/bin/time", "-q", "-f", "%M", "-o", report.name] + command,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            sys.exit(f"failed: {' '.join(command)}\n{result.stderr.decode()}")
        return elapsed, int(report.read().split()[-1])


def instructions(command):
    """Instructions executed by one run under callgrind."""
    with tempfile.NamedTemporaryFile() as out:
        result = subprocess.run(
            # Follow children, should a luamem built without the lean runner execute one.
            ["valgrind", "--tool=callgrind", "--trace-children=yes",
             f"--callgrind-out-file={out.name}"] + command,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            sys.exit(f"failed under callgrind: {' '.join(command)}\n{result.stderr[-2000:]}")
        for line in result.stderr.splitlines():
            if "Collected :" in line:
                return int(line.split(":")[-1].strip())
    sys.exit("callgrind printed no instruction count")


def callgrind(args, scratch):
    db = os.path.join(scratch, "callgrind.db")
    empty = os.path.join(scratch, "empty.lua")
    open(empty, "w").close()
    startup = instructions([args.luamem, "run", "--db", db, empty]) - instructions([args.lua, empty])
    print(f"instructions (callgrind), luamem {os.path.relpath(args.luamem)}, depth {args.depth}"
          f"{', sample ' + args.sample if args.sample else ''}; luamem's own start-up: "
          f"{startup / 1e6:.1f} M instructions")
    print("%-16s %12s %12s %6s %18s" % ("workload", "lua5.3 M", "luamem M", "ratio", "without start-up"))
    for name, script, script_args in CALLGRIND_WORKLOADS:
        path = os.path.join(HERE, "workloads", script)
        sampling = ["--sample", args.sample] if args.sample else []
        plain = instructions([args.lua, path] + script_args)
        tracked = instructions([args.luamem, "run", "--db", db, "--depth", args.depth] + sampling
                               + [path] + script_args)
        print("%-16s %12.1f %12.1f %5.2fx %17.2fx" % (
            name, plain / 1e6, tracked / 1e6, tracked / plain, (tracked - startup) / plain))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--luamem", default=os.path.join(HERE, "..", ".build", "release", "luamem"))
    parser.add_argument("--lua", default="lua5.3")
    parser.add_argument("--depth", default="1")
    parser.add_argument("--sample", default=None, help="e.g. 512KiB: luamem run --sample")
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead")
    args = parser.parse_args()
    if args.callgrind:
        with tempfile.TemporaryDirectory() as scratch:
            callgrind(args, scratch)
        return

    with tempfile.TemporaryDirectory() as scratch:
        db = os.path.join(scratch, "bench.db")
        empty = os.path.join(scratch, "empty.lua")
        open(empty, "w").close()
        # An empty script shows what the process that runs scripts costs before the tracker
        # holds anything (luamem runs `luamem run` in its own, lean process).
        baseline = statistics.median(
            measure([args.luamem, "run", "--db", db, empty])[1] for _ in range(3)) - \
            statistics.median(measure([args.lua, empty])[1] for _ in range(3))
        mode = f"sample {args.sample}" if args.sample else "every allocation"
        print(f"luamem {os.path.relpath(args.luamem)}, depth {args.depth}, {mode}, {args.runs} runs each, "
              f"medians. The process running the script (luamem) "
              f"adds {baseline / 1024:.1f} MiB RSS on an empty script; 'tracker' is the extra RSS "
              f"beyond that.")
        header = ("workload", "lua5.3 s", "luamem s", "ratio", "lua5.3 MiB", "luamem MiB",
                  "extra MiB", "tracker MiB")
        print("%-16s %9s %9s %6s %11s %11s %10s %17s" % header)
        for name, script, script_args in WORKLOADS:
            path = os.path.join(HERE, "workloads", script)
            plain, tracked = [], []
            for _ in range(args.runs):
                plain.append(measure([args.lua, path] + script_args))
                sampling = ["--sample", args.sample] if args.sample else []
                tracked.append(measure([args.luamem, "run", "--db", db, "--depth", args.depth]
                                       + sampling + [path] + script_args))
            plain_s = statistics.median(t for t, _ in plain)
            tracked_s = statistics.median(t for t, _ in tracked)
            plain_rss = statistics.median(r for _, r in plain)
            tracked_rss = statistics.median(r for _, r in tracked)
            extra = tracked_rss - plain_rss
            print("%-16s %9.3f %9.3f %5.2fx %11.1f %11.1f %10.1f %10.1f (%3.0f%%)" % (
                name, plain_s, tracked_s, tracked_s / plain_s, plain_rss / 1024,
                tracked_rss / 1024, extra / 1024, (extra - baseline) / 1024,
                100 * (extra - baseline) / plain_rss))


if __name__ == "__main__":
    main()
