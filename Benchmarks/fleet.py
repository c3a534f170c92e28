#!/usr/bin/env python3
"""Ships a simulated fleet into a real ClickHouse and times it and the fleet question.

Writes --hosts SQLite files through the real snapshot writer (luamem-gendb: each host a run of
--hours at --interval seconds, --sites sites of which --changing change per snapshot), starts
Debian's clickhouse-server on loopback with a folder of its own, ships every file with
`luamem ship`, ships again (nothing to add), and times README's fleet query (what each line
holds after GC at the latest snapshot, summed over the fleet), and across the fleet `luamem
query --since 1h`, `diff` of the two builds (even hosts run v1, odd ones v2) and `leaks
--since 1h`. Medians of --repeat.

    swift build -c release --product luamem-cli --product luamem-gendb   (or plain swift build -c release)
    python3 Benchmarks/fleet.py                              # 50 hosts, 6 hours, 200 changing sites
    python3 Benchmarks/fleet.py --hosts 5 --hours 1          # a quick look
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default=".build/release", help="folder of luamem-cli and luamem-gendb")
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--hours", type=float, default=6)
    parser.add_argument("--interval", type=float, default=10)
    parser.add_argument("--sites", type=int, default=2000)
    parser.add_argument("--changing", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    cli = os.path.join(args.bin, "luamem-cli")
    gendb = os.path.join(args.bin, "luamem-gendb")
    work = tempfile.mkdtemp(prefix="luamem-fleet-")
    files = os.path.join(work, "files")
    os.makedirs(files)
    print(f"writing {args.hosts} hosts: {args.hours} h at {args.interval} s, {args.sites} sites, "
          f"{args.changing} changing ...", flush=True)
    for host in range(args.hosts):
        subprocess.run([gendb, "--db", os.path.join(files, f"host{host:03}.db"),
                        "--hours", str(args.hours), "--interval", str(args.interval),
                        "--sites", str(args.sites), "--changing", str(args.changing),
                        "--runs", "1", "--seed", str(host + 1), "--host", f"host{host:03}",
                        "--build", "v1" if host % 2 == 0 else "v2"], check=True,
                       stdout=subprocess.DEVNULL)

    http, tcp = free_port(), free_port()
    server = os.path.join(work, "server")
    os.makedirs(server)
    with open(os.path.join(server, "config.xml"), "w") as f:
        f.write(f"""<?xml version="1.0"?><yandex>
<logger><level>warning</level><log>{server}/server.log</log><errorlog>{server}/error.log</errorlog><console>0</console></logger>
<http_port>{http}</http_port><tcp_port>{tcp}</tcp_port><listen_host>127.0.0.1</listen_host>
<path>{server}/data/</path><tmp_path>{server}/tmp/</tmp_path><user_files_path>{server}/user_files/</user_files_path>
<format_schema_path>{server}/format_schemas/</format_schema_path><users_config>{server}/users.xml</users_config>
<default_profile>default</default_profile><default_database>default</default_database>
<mark_cache_size>5368709</mark_cache_size><timezone>UTC</timezone></yandex>""")
    with open(os.path.join(server, "users.xml"), "w") as f:
        f.write("""<?xml version="1.0"?><yandex><profiles><default/></profiles>
<users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile>
<quota>default</quota></default></users><quotas><default/></quotas></yandex>""")
    process = subprocess.Popen(["clickhouse-server", f"--config-file={server}/config.xml"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def query(sql):
            request = urllib.request.Request(f"http://127.0.0.1:{http}/", data=sql.encode())
            with urllib.request.urlopen(request, timeout=600) as response:
                return response.read().decode()
        for _ in range(300):
            try:
                query("SELECT 1")
                break
            except OSError:
                time.sleep(0.1)
        target = f"clickhouse://127.0.0.1:{http}/fleet"
        import resource
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        shipped = subprocess.run([cli, "ship", "--db", files, "--to", target], check=True,
                                 capture_output=True, text=True).stdout.strip()
        ship_s = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cli_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        rows = int(query("SELECT count() FROM fleet.site_stats"))
        start = time.perf_counter()
        again = subprocess.run([cli, "ship", "--db", files, "--to", target], check=True,
                               capture_output=True, text=True).stdout.strip()
        again_s = time.perf_counter() - start
        readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
        recipe = readme.split("```sql clickhouse\n")[1].split("```")[0]
        recipe = recipe.replace("luamem.", "fleet.").replace("build = 'v2'", "build = 'v2-1'")
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            query(recipe)
            times.append(time.perf_counter() - start)
        def timed(arguments):
            spent = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                subprocess.run([cli] + arguments, check=True, capture_output=True)
                spent.append(time.perf_counter() - start)
            return statistics.median(spent) * 1000
        cli_ms = timed(["query", "--db", target, "--build", "v2-1", "--since", "1h"])
        all_ms = timed(["query", "--db", target, "--since", "1h"])
        diff_ms = timed(["diff", "--db", target, "--base", "build:v1-1", "--head", "build:v2-1"])
        leaks_ms = timed(["leaks", "--db", target, "--build", "v2-1", "--since", "1h"])
        print(f"{shipped}")
        print(f"ship: {ship_s:.2f} s, {rows / ship_s:,.0f} site rows/s ({rows:,} rows); "
              f"luamem's own CPU {cli_cpu:.2f} s, the rest is the server's")
        print(f"ship again: {again_s:.2f} s ({again})")
        print(f"fleet query (README's, {args.hosts} hosts): {statistics.median(times) * 1000:.0f} ms "
              f"median of {args.repeat}")
        half = (args.hosts + 1) // 2
        print(f"luamem query --since 1h --build v2-1 ({args.hosts // 2} hosts): {cli_ms:.0f} ms")
        print(f"luamem query --since 1h (all {args.hosts} hosts): {all_ms:.0f} ms")
        print(f"luamem diff --base build:v1-1 --head build:v2-1 ({half} + {args.hosts // 2} hosts): "
              f"{diff_ms:.0f} ms")
        print(f"luamem leaks --since 1h --build v2-1 ({args.hosts // 2} hosts): {leaks_ms:.0f} ms "
              f"(medians of {args.repeat})")
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
