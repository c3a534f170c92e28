#!/usr/bin/env bash
# Sets everything up, runs the example server under luamem, and asks which lines grew.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release --product luamem       # runs `luamem run` itself
swift build -c release --product luamem-cli   # every other command (luamem executes it)
luamem=.build/release/luamem
rm -f example.db example.db-wal example.db-shm
"$luamem" run --db example.db --interval 0.5 --build demo examples/server.lua
echo
"$luamem" query --db example.db --top 10
