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
echo "asan-run: 9 programs under the tracker, no AddressSanitizer report"
