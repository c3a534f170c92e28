#!/usr/bin/env bash
# Installs the Debian packages luamem builds with: Lua 5.3 and SQLite, headers and command-line
# tools, and zlib (pprof files are gzipped). With --tests, also what the test suite uses:
# luacheck (a real Lua code base run under the tracker), chromium (the headless browser the HTML
# report is tested in), golang-go (go tool pprof reads the pprof export), clickhouse-server and
# curl (luamem ship is tested against a real server, which the tests start), and what
# scripts/package.sh and the install tests need (dpkg-dev, pkg-config, a C compiler). With
# --bench, what the benchmarks run: GNU time, valgrind, and the real programs compare.py times
# (luacheck, LDoc over Penlight).
set -euo pipefail
packages=(liblua5.3-dev lua5.3 libsqlite3-dev sqlite3 zlib1g-dev)
case "${1:-}" in
    --tests) packages+=(lua-check chromium dpkg-dev pkgconf gcc golang-go clickhouse-server curl) ;;
    --bench) packages+=(time valgrind lua-check lua-ldoc lua-penlight clickhouse-server) ;;
    "") ;;
    *) echo "usage: install-deps.sh [--tests|--bench]" >&2; exit 64 ;;
esac
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if ((${#missing[@]})); then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${missing[@]}"
fi
command -v swift >/dev/null || { echo "swift is not on PATH (Swift 6.x toolchain needed)" >&2; exit 1; }
