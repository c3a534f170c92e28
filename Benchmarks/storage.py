#!/usr/bin/env python3
"""Storage growth and query speed on a large history. Not a test: figures depend on the machine.

    swift build -c release
    python3 Benchmarks/storage.py [--dir /tmp/luamem-storage] [--hours 168] [--sites 50000]
                                  [--changing 1000] [--runs 5] [--reuse]

It writes, through the real snapshot writer (luamem-gendb), a history of --hours at a 10 s
interval in two runs of equal length (builds build-1 and build-2), with --sites sites of which
--changing change at every snapshot. It also writes a day of a program whose sites never change.
It prints the file size per hour of both, then the median wall time of --runs invocations of
each query the CLI answers, and finally prunes a copy of the large file. --reuse keeps files
from an earlier run with the same parameters.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def generate(gendb, path, reuse, **options):
    if reuse and os.path.exists(path):
        return 0.0
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    command = [gendb, "--db", path] + [
        item for name, value in options.items() for item in (f"--{name}", str(value))]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    # Checkpoint the WAL into the file so that its size is the whole story.
    subprocess.run(["sqlite3", path, "PRAGMA wal_checkpoint(TRUNCATE);"], check=True,
                   stdout=subprocess.DEVNULL)
    return elapsed


def size(path):
    return sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))


def timed(command, runs):
    """Median wall seconds of `runs` invocations; the output of the last one."""
    times = []
    output = ""
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if result.returncode not in (0, 1):
            sys.exit(f"failed: {' '.join(command)}\n{result.stderr}")
        output = result.stdout
    return statistics.median(times), output


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/tmp/luamem-storage")
    parser.add_argument("--hours", type=float, default=168)
    parser.add_argument("--sites", type=int, default=50000)
    parser.add_argument("--changing", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--luamem", default=os.path.join(ROOT, ".build/release/luamem"))
    parser.add_argument("--gendb", default=os.path.join(ROOT, ".build/release/luamem-gendb"))
    args = parser.parse_args()
    for tool in (args.luamem, args.gendb):
        if not os.path.exists(tool):
            sys.exit(f"{tool} is missing: swift build -c release")
    os.makedirs(args.dir, exist_ok=True)
    tag = f"{args.hours:g}h-{args.sites}-{args.changing}"
    big = os.path.join(args.dir, f"history-{tag}.db")
    idle_day = os.path.join(args.dir, f"idle-24h-{args.sites}.db")
    idle_hour = os.path.join(args.dir, f"idle-1h-{args.sites}.db")

    print(f"writing {args.hours:g} h at 10 s: {args.sites} sites, {args.changing} changing "
          f"per snapshot, 2 runs …", flush=True)
    took = generate(args.gendb, big, args.reuse, hours=args.hours, sites=args.sites,
                    changing=args.changing, runs=2)
    generate(args.gendb, idle_day, args.reuse, hours=24, sites=args.sites, changing=0)
    generate(args.gendb, idle_hour, args.reuse, hours=1, sites=args.sites, changing=0)
    rows = int(subprocess.run(["sqlite3", big, "SELECT count(*) FROM site_stats"],
                              capture_output=True, text=True, check=True).stdout)
    rollups = subprocess.run(
        ["sqlite3", big, "SELECT level, count(*) FROM site_rollups GROUP BY level"],
        capture_output=True, text=True, check=True).stdout.split()
    if took:
        print(f"  written in {took:.0f} s ({rows / took / 1000:.0f}k site_stats rows/s)")
    print(f"  site_stats rows {rows:,}; site_rollups rows per level "
          + ", ".join(r.replace("|", ": ") for r in rollups))

    print("\nfile size")
    mb = 1024 * 1024
    print(f"  {args.changing} changing sites: {size(big) / mb:,.0f} MiB for {args.hours:g} h = "
          f"{size(big) / mb / args.hours:.1f} MiB/hour")
    idle = (size(idle_day) - size(idle_hour)) / 23
    print(f"  no site changing: {size(idle_hour) / mb:.1f} MiB after the first hour (the first "
          f"snapshot holds every site), then {idle / 1024:.0f} KiB/hour")

    # Windows end at the history's last snapshot, as `--since 1h` does on a live system, so
    # that a reused file gives the same figures later.
    last_ms = int(subprocess.run(["sqlite3", big, "SELECT max(time_ms) FROM snapshots"],
                                 capture_output=True, text=True, check=True).stdout)

    def back(hours):
        moment = time.gmtime((last_ms - hours * 3_600_000) / 1000)
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", moment)

    print(f"\nqueries (median of {args.runs}, wall time of the whole `luamem` process; windows "
          "end at the last snapshot)")
    queries = [
        ("query --since 1h", ["query", "--since", back(1)]),
        ("query --since 6h", ["query", "--since", back(6)]),
        ("diff run:1 run:2", ["diff", "--base", "run:1", "--head", "run:2"]),
        ("diff --at 1h", ["diff", "--base", "run:1", "--head", "run:2", "--at", "1h"]),
        ("leaks --since 6h", ["leaks", "--since", back(6)]),
        ("leaks --since 1h", ["leaks", "--since", back(1)]),
        ("history server/module0.lua --since 6h",
         ["history", "server/module0.lua", "--since", back(6)]),
        ("runs", ["runs"]),
    ]
    for label, arguments in queries:
        seconds, output = timed([args.luamem] + arguments[:1] + ["--db", big] + arguments[1:],
                                args.runs)
        first = next((line for line in output.splitlines() if line.strip()), "")
        print(f"  {label:40} {seconds * 1000:7.0f} ms   {first[:60]}")
    seconds, _ = timed([args.luamem, "report", "--db", big, "--output",
                        os.path.join(args.dir, "report.html")], 1)
    print(f"  {'report (whole latest run)':40} {seconds * 1000:7.0f} ms")

    print("\nprune")
    copy = os.path.join(args.dir, "prune-copy.db")
    shutil.copyfile(big, copy)
    cut = max(1, int(args.hours / 2))
    seconds, output = timed([args.luamem, "prune", "--db", copy, "--older-than", f"{cut}h"], 1)
    subprocess.run(["sqlite3", copy, "VACUUM"], check=True)
    print(f"  prune --older-than {cut}h: {seconds:.1f} s; {output.strip()}")
    print(f"  after VACUUM: {size(copy) / mb:,.0f} MiB")
    seconds, output = timed([args.luamem, "query", "--db", copy, "--since", back(1)], args.runs)
    print(f"  query --since 1h afterwards: {seconds * 1000:.0f} ms")
    seconds, output = timed([args.luamem, "prune", "--db", copy, "--thin-older-than", "24h"], 1)
    subprocess.run(["sqlite3", copy, "VACUUM"], check=True)
    print(f"  prune --thin-older-than 24h: {seconds:.1f} s; {output.strip()}")
    print(f"  after VACUUM: {size(copy) / mb:,.0f} MiB")
    seconds, output = timed([args.luamem, "leaks", "--db", copy, "--since", back(48)], args.runs)
    print(f"  leaks over the last 48 h afterwards: {seconds * 1000:.0f} ms; "
          f"{output.splitlines()[0] if output else ''}")
    os.remove(copy)


if __name__ == "__main__":
    main()
