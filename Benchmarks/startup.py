#!/usr/bin/env python3
"""Start-up of a tracked process, side by side with plain lua5.3 (issue: test suites start
hundreds of processes, and each pays luamem's start-up).

Runs an empty script, in interleaved rounds, as:
  lua5.3 empty.lua                       (the baseline)
  luamem run --db FILE empty.lua         (luamem runs it in its own lean process)
  luamem-run --db FILE empty.lua         (the same, under a name of its own)
  lua5.3 -l luamem.auto empty.lua        (the module in a stock lua5.3, LUAMEM_DB=FILE)
and prints each one's median wall time and its ratio to lua5.3. Every tracked run records a run,
two snapshots and the run's end in FILE, which all runs share (as a test suite's processes do).

    python3 Benchmarks/startup.py --prefix dist/unpacked/luamem-0.2.0   # an unpacked archive
    python3 Benchmarks/startup.py --bin .build/release                   # a build from source

Wall times on a shared machine move by a few percent; compare ratios from one invocation.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--prefix", help="an unpacked release archive (bin/, lib/lua/5.3/)")
    where.add_argument("--bin", help="a build folder holding luamem, luamem-run, libluamem-embed.so")
    parser.add_argument("--lua", default="lua5.3")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--fresh", action="store_true",
                        help="a new database file for every run (schema created each time)")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="luamem-startup-")
    empty = os.path.join(work, "empty.lua")
    open(empty, "w").close()
    if args.prefix:
        bindir = os.path.join(args.prefix, "bin")
        cpath = os.path.join(args.prefix, "lib", "lua", "5.3", "?.so")
    else:
        bindir = args.bin
        os.symlink(os.path.abspath(os.path.join(args.bin, "libluamem-embed.so")),
                   os.path.join(work, "luamem.so"))
        cpath = os.path.join(work, "?.so")
    db = os.path.join(work, "startup.db")
    env = dict(os.environ, LUA_CPATH=cpath, LUAMEM_DB=db)
    for name in ("LUA_INIT", "LUA_INIT_5_3"):
        env.pop(name, None)
    commands = {
        "lua5.3": [args.lua, empty],
        "luamem run": [os.path.join(bindir, "luamem"), "run", "--db", db, empty],
        "luamem-run": [os.path.join(bindir, "luamem-run"), "--db", db, empty],
        "-l luamem.auto": [args.lua, "-l", "luamem.auto", empty],
    }
    times = {name: [] for name in commands}
    for _ in range(3):  # warm the page cache and create the file
        for command in commands.values():
            subprocess.run(command, env=env, check=True)
    for _ in range(args.rounds):
        for name, command in commands.items():
            if args.fresh:
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(db + suffix):
                        os.remove(db + suffix)
            start = time.perf_counter()
            subprocess.run(command, env=env, check=True)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["lua5.3"])
    goals = {"luamem run": 4.0, "-l luamem.auto": 3.0}
    print(f"empty script, median of {args.rounds} interleaved rounds"
          f"{', a new file each run' if args.fresh else ', one shared file'}:")
    print(f"{'':16s} {'median':>9s} {'vs lua5.3':>10s}  goal")
    for name, values in times.items():
        median = statistics.median(values)
        goal = f"<= {goals[name]:.0f}x" if name in goals else ""
        print(f"{name:16s} {median * 1000:7.2f}ms {median / base:9.2f}x  {goal}")
    runs = subprocess.run(["sqlite3", db, "SELECT count(*) FROM runs"], capture_output=True,
                          text=True).stdout.strip()
    if not args.fresh:
        print(f"({runs} runs recorded in {db})")


if __name__ == "__main__":
    sys.exit(main())
