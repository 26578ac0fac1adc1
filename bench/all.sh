#!/usr/bin/env bash
# Every figure of BENCHMARKS.md's first section, from a fresh clone: amend beside the three
# DuckDB jobs (full runs with 1 and 2 workers, memory, the 1% corrections and single
# corrections into a loaded --follow run) at 1M, 10M and 30M events, then the stream against
# a batch run over the same records. Builds the release binary once; the datasets go to
# bench/data/ (about 9 GB at 30M: delete it afterwards). About 90 minutes on 2 cores; pass
# sizes to run fewer, e.g. `bench/all.sh 1000000`.
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000000 10000000 30000000)
cargo build --release --quiet --bin amend
python3 bench/duckdb.py --events "${sizes[@]}" --runs 3 --amend target/release/amend
python3 bench/follow.py --parts stream --stream-events 8000000 --stream-keys 10000 \
  --stream-span 1d --allowed-lateness 5m --amend target/release/amend
