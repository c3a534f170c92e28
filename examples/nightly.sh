#!/usr/bin/env bash
# What a nightly CI job does with luamem: run last night's build and tonight's, twice each, and
# fail when tonight's live memory grew by more than 5% anywhere. Prints a markdown table that is
# ready to paste into a review comment. Exit status: 0 no regression, 1 regression, other: error.
#   bash examples/nightly.sh [path/to/luamem] [database]
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
luamem="$(cd "$(dirname "${1:-$here/../.build/release/luamem}")" && pwd)/$(basename "${1:-luamem}")"
db="$(realpath -m "${2:-nightly.db}")"
rm -f "$db" "$db-wal" "$db-shm"
for build in v1 v2; do
    for attempt in 1 2; do
        # Run from the build's directory so both builds name their file "app.lua".
        (cd "$here/nightly/$build" && "$luamem" run --db "$db" --build "$build" app.lua) || exit 2
    done
done
"$luamem" diff --db "$db" --base build:v1 --head build:v2 --fail-above 5% --format markdown --top 10
