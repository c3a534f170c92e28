#!/usr/bin/env bash
# Address-sanitizer check: builds luamem with -sanitize=address and runs real programs under the
# tracker (site attribution, exact totals, chunk reloading, coroutines, generated code past the
# site cap, binary-trees); fails on any AddressSanitizer report.
set -euo pipefail
cd "$(dirname "$0")/.."
build=.build-asan
# gold warns once per ASan assembly stub that it cannot export a local symbol (~270 lines that
# say nothing about luamem); everything else the build prints is kept.
quiet() { grep -v "warning: Cannot export local symbol '__asan_" || true; }
# `luamem run` runs the scripts in the luamem executable itself.
swift build --sanitize=address --build-path "$build" --product luamem 2>&1 | quiet
luamem="$build/debug/luamem"
fixtures=Tests/LuamemTests/Fixtures
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:exitcode=66"
run() {
    local name=$1; shift
    "$luamem" run --db "$work/asan.db" "$@" > "$work/$name.out" 2> "$work/$name.err" || true
    if grep -q "AddressSanitizer" "$work/$name.err"; then cat "$work/$name.err"; exit 1; fi
}
run sites --interval 0.05 "$fixtures/sites.lua"
run exact "$fixtures/exact.lua"
run reload "$fixtures/reload.lua"
run patterns --interval 0.05 "$fixtures/patterns.lua" 0.5
run fails "$fixtures/fails.lua"
run generated --max-sites 200 "$fixtures/generated.lua" 1000
run depth --depth 8 "$fixtures/depth.lua"
run trees Benchmarks/workloads/binary_trees.lua 12
run ticks --interval 0.05 Benchmarks/workloads/game_tick.lua 2000
grep -q "exact" "$work/exact.out" || { echo "asan-run: exact.lua did not finish" >&2; exit 1; }

# A C host that begins and closes a state while another process holds the file's write lock:
# the state's final snapshot is left to the flusher thread, which frees the tracker after
# lua_close is done with it (Flusher.close, Tracker.flusherReleased).
swift build --sanitize=address --build-path "$build" --product luamem-embed 2>&1 | quiet
clang -fsanitize=address -g $(pkg-config --cflags lua5.3) -I Sources/Luamem/include \
    "$fixtures/busy_file_host.c" -o "$work/busy_file_host" -L "$build/debug" -lluamem-embed \
    -llua5.3 -lpthread -Wl,-rpath,"$PWD/$build/debug" 2>&1 | quiet
"$work/busy_file_host" "$work/busy.db" "$work/ready" "$work/go" "$work/done" \
    > "$work/busy.out" 2> "$work/busy.err" &
host=$!
for _ in $(seq 3000); do [ -e "$work/ready" ] && break; sleep 0.01; done
python3 - "$work/busy.db" "$work/go" "$work/done" <<'PYTHON'
import os, sqlite3, sys, time
db, go, done = sys.argv[1:]
connection = sqlite3.connect(db, isolation_level=None, timeout=10)
connection.execute("BEGIN IMMEDIATE")
open(go, "w").close()
for _ in range(3000):
    if os.path.exists(done): break
    time.sleep(0.01)
connection.execute("ROLLBACK")
PYTHON
status=0
wait "$host" || status=$?
if grep -q "AddressSanitizer" "$work/busy.err" || [ "$status" != 0 ]; then
    cat "$work/busy.err"
    echo "asan-run: busy_file_host.c failed (status $status)" >&2
    exit 1
fi
closed=$(sqlite3 "$work/busy.db" "SELECT n.live_count FROM snapshots n JOIN states s ON s.id = n.state_id WHERE s.name = 'second' AND n.kind = 'final'")
[ "${closed:-0}" -ge 100 ] || { echo "asan-run: no final snapshot of the state closed under the lock ($closed)" >&2; exit 1; }
echo "asan-run: 9 programs under the tracker and a host closing a state under another's lock, no AddressSanitizer report"
