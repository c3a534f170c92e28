#!/usr/bin/env bash
# Thread-sanitizer check: builds libluamem-embed.so with -sanitize=thread and the sample host
# with clang's -fsanitize=thread, runs four Lua states on four threads while the flusher writes
# every 50 ms, then two states whose tables grow while it writes every 10 ms, and fails on any
# ThreadSanitizer report.
set -euo pipefail
cd "$(dirname "$0")/.."
build=.build-tsan
swift build --sanitize=thread --build-path "$build" --product luamem-embed
products="$build/debug"
runtime="$(dirname "$(command -v swift)")/../lib/swift/linux"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Builds host source $1 with -fsanitize=thread as $work/$2 and runs it on $work/$2.db; fails on a
# failed run or any ThreadSanitizer report.
run_host() {
    clang -fsanitize=thread -g $(pkg-config --cflags lua5.3) -I Sources/Luamem/include "$1" -o "$work/$2" \
        -L "$products" -lluamem-embed -llua5.3 -lpthread -L "$runtime" -ldispatch -lBlocksRuntime \
        -Wl,-rpath,"$PWD/$products" -Wl,-rpath,"$runtime"
    TSAN_OPTIONS="halt_on_error=0 exitcode=66" "$work/$2" "$work/$2.db" > "$work/$2.txt" 2>&1 || {
        cat "$work/$2.txt"
        echo "tsan-host: $1 failed or ThreadSanitizer reported races" >&2
        exit 1
    }
    if grep -q "WARNING: ThreadSanitizer" "$work/$2.txt"; then
        cat "$work/$2.txt"
        exit 1
    fi
}

run_host examples/host/host.c host
states=$(sqlite3 "$work/host.db" "SELECT count(*) FROM states WHERE closed_ms IS NOT NULL")
[ "$states" = 4 ] || { echo "tsan-host: expected 4 closed states, found $states" >&2; exit 1; }

# The tracker's tables and marks grow (directories replaced) while the flusher reads them.
run_host Tests/LuamemTests/Fixtures/growth_host.c growth
# Every state's 6,000 chunks reached the file, each with its one kept table.
kept=$(sqlite3 "$work/growth.db" "SELECT count(*) FROM site_latest WHERE file LIKE 'gen%' AND type = 'table' AND live_count >= 1")
[ "$kept" = 12000 ] || { echo "tsan-host: expected 12000 kept tables of gen chunks, found $kept" >&2; exit 1; }
echo "tsan-host: 4 states on 4 threads, then 2 states growing their tables, with the flusher running, no ThreadSanitizer report"
