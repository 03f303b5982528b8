#!/usr/bin/env bash
# Fuzzes the manifest parser, the upload sniffer and the tar checker for a fixed
# time (mutations of real manifests and tars, plus YAML bombs) and fails on any
# panic. Prints the number of inputs tried; record it in BENCHMARKS.md.
#
#   SECS=60 SEED=1 bench/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-60}
SEED=${SEED:-$(date +%s)}
cargo run --release --quiet -p berth-server --example fuzz -- "$SECS" "$SEED"
