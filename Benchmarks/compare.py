#!/usr/bin/env python3
"""Runs each workload under plain lua5.3 and under `luamem run`, alternating, and prints median
wall time, the ratio, and peak RSS of both. Not a test: figures depend on the machine.

    python3 Benchmarks/compare.py [--runs 5] [--luamem .build/release/luamem] [--depth 1]
                                  [--sample 512KiB]

With --callgrind it counts instructions instead (valgrind --tool=callgrind), and with
--cachegrind instructions, data references and cache misses (valgrind --tool=cachegrind
--cache-sim=yes: first-level data misses, and last-level misses, which go to memory); both
repeat exactly on a busy machine. valgrind cannot read this toolchain's DWARF 5, so those modes
need a build without debug information:

    swift build -c release -Xswiftc -gnone -Xcc -g0 --build-path .build-nodebug --product luamem
    python3 Benchmarks/compare.py --callgrind --luamem .build-nodebug/release/luamem
    python3 Benchmarks/compare.py --cachegrind --luamem .build-nodebug/release/luamem

Besides the synthetic workloads, two real programs run when Debian has them installed (both
run by lua5.3, their modules found through LUA_PATH): luacheck (`lua-check`) over the Lua
trees in /usr/share/lua, and LDoc (`lua-ldoc`) over Penlight's sources (`lua-penlight`).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LUA51_PATH = {"LUA_PATH": "/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua;;"}


def real_programs(scratch, small):
    """(name, arguments after the interpreter, environment) of the real programs installed."""
    programs = []
    if os.path.exists("/usr/bin/luacheck"):
        tree = "/usr/share/lua/5.1/luacheck" if small else "/usr/share/lua"
        programs.append((("luacheck (small)" if small else "luacheck"),
                         ["/usr/bin/luacheck", "--no-color", "--codes", "--no-cache", "-q", tree],
                         LUA51_PATH))
    if os.path.exists("/usr/bin/ldoc") and os.path.isdir("/usr/share/lua/5.3/pl"):
        out = os.path.join(scratch, "ldoc")
        os.makedirs(out, exist_ok=True)
        programs.append(("LDoc penlight", ["/usr/bin/ldoc", "-q", "-d", out, "/usr/share/lua/5.3/pl"],
                         LUA51_PATH))
    return programs


def workloads(table, scratch, small):
    """The synthetic workloads of `table` and the real programs, as (name, arguments, env)."""
    return [(name, [os.path.join(HERE, "workloads", script)] + script_args, {})
            for name, script, script_args in table] + real_programs(scratch, small)
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


def measure(command, env=None):
    """Wall seconds and peak RSS (KiB) of one run; output discarded, failure is fatal.

    The peak RSS comes from GNU time (/usr/bin/time, Debian package `time`): the rusage of a
    child forked by this Python process counts Python's own ~15 MiB before the exec, which
    hid the true size of small programs such as plain lua5.3 (2.4 MiB)."""
    with tempfile.NamedTemporaryFile(mode="r") as report:
        start = time.perf_counter()
        result = subprocess.run(["/usr/bin/time", "-q", "-f", "%M", "-o", report.name] + command,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env={**os.environ, **(env or {})})
        elapsed = time.perf_counter() - start
        # luacheck exits 1 when it reports warnings and 2 for errors in the code it checks.
        if result.returncode not in (0, 1, 2):
            sys.exit(f"failed: {' '.join(command)}\n{result.stderr.decode()}")
        return elapsed, int(report.read().split()[-1])


def own_lines(stderr):
    """valgrind's lines about the program itself, not the children it runs: luacheck runs
    `uname -s` through io.popen, and those report first. An exec keeps the process id, so the
    first id seen is the program's."""
    lines = stderr.splitlines()
    first = next((line.split()[0] for line in lines if line.startswith("==")), None)
    return [line for line in lines if line.startswith(f"{first} ")]


def instructions(command, env=None):
    """Instructions executed by one run under callgrind."""
    with tempfile.NamedTemporaryFile() as out:
        result = subprocess.run(
            # Follow children, should a luamem built without the lean runner execute one.
            ["valgrind", "--tool=callgrind", "--trace-children=yes",
             f"--callgrind-out-file={out.name}"] + command,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})})
        if result.returncode not in (0, 1, 2):
            sys.exit(f"failed under callgrind: {' '.join(command)}\n{result.stderr[-2000:]}")
        for line in own_lines(result.stderr):
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
    for name, arguments, env in workloads(CALLGRIND_WORKLOADS, scratch, small=True):
        sampling = ["--sample", args.sample] if args.sample else []
        plain = instructions([args.lua] + arguments, env)
        tracked = instructions([args.luamem, "run", "--db", db, "--depth", args.depth] + sampling
                               + arguments, env)
        print("%-16s %12.1f %12.1f %5.2fx %17.2fx" % (
            name, plain / 1e6, tracked / 1e6, tracked / plain, (tracked - startup) / plain))


def cache_counts(command, env=None):
    """Cachegrind's totals for one run: instruction and data references, first-level data
    misses and last-level misses (instructions and data)."""
    with tempfile.NamedTemporaryFile() as out:
        result = subprocess.run(
            ["valgrind", "--tool=cachegrind", "--cache-sim=yes", "--trace-children=yes",
             f"--cachegrind-out-file={out.name}"] + command,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})})
        if result.returncode not in (0, 1, 2):
            sys.exit(f"failed under cachegrind: {' '.join(command)}\n{result.stderr[-2000:]}")
    counts = {}
    for line in own_lines(result.stderr):
        # "==123== D1  misses:   1,234,567  ( ... rd   + ... wr)"
        text = line.split("==", 2)[-1].strip()
        for key in ("I   refs:", "D   refs:", "D1  misses:", "LL misses:"):
            if text.startswith(key):
                counts[key.split()[0]] = int(text[len(key):].split()[0].replace(",", ""))
    if len(counts) != 4:
        sys.exit("cachegrind printed no totals")
    return counts


def cachegrind(args, scratch):
    db = os.path.join(scratch, "cachegrind.db")
    print(f"cachegrind (simulated caches), luamem {os.path.relpath(args.luamem)}, depth "
          f"{args.depth}{', sample ' + args.sample if args.sample else ''}; millions, tracked / plain")
    print("%-18s %17s %17s %17s %17s" % ("workload", "instructions", "data refs", "D1 misses",
                                          "LL misses"))
    empty = os.path.join(scratch, "empty.lua")
    open(empty, "w").close()
    # The empty script first: what luamem's start-up adds to every row below.
    for name, arguments, env in [("empty script", [empty], {})] + workloads(
            CALLGRIND_WORKLOADS, scratch, small=True):
        sampling = ["--sample", args.sample] if args.sample else []
        plain = cache_counts([args.lua] + arguments, env)
        tracked = cache_counts([args.luamem, "run", "--db", db, "--depth", args.depth]
                               + sampling + arguments, env)
        cells = ["%7.1f/%-6.1f %4.2fx" % (tracked[k] / 1e6, plain[k] / 1e6,
                                          tracked[k] / max(plain[k], 1))
                 for k in ("I", "D", "D1", "LL")]
        print("%-18s %s" % (name, " ".join("%17s" % c for c in cells)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--luamem", default=os.path.join(HERE, "..", ".build", "release", "luamem"))
    parser.add_argument("--lua", default="lua5.3")
    parser.add_argument("--depth", default="1")
    parser.add_argument("--sample", default=None, help="e.g. 512KiB: luamem run --sample")
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead")
    parser.add_argument("--cachegrind", action="store_true",
                        help="count instructions, data references and cache misses instead")
    args = parser.parse_args()
    if args.callgrind or args.cachegrind:
        with tempfile.TemporaryDirectory() as scratch:
            (callgrind if args.callgrind else cachegrind)(args, scratch)
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
        for name, arguments, env in workloads(WORKLOADS, scratch, small=False):
            plain, tracked = [], []
            for _ in range(args.runs):
                plain.append(measure([args.lua] + arguments, env))
                sampling = ["--sample", args.sample] if args.sample else []
                tracked.append(measure([args.luamem, "run", "--db", db, "--depth", args.depth]
                                       + sampling + arguments, env))
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
