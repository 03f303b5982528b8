#!/usr/bin/env bash
# What the web console adds to the binary: `cargo build --release -p berth`
# with and without the `console` feature, in the same run and target dir.
# Prints the file size, the stripped size and the loaded sections (text +
# data) of both, and the difference. The budget is 1 MiB.
#
#   bench/console-size.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

cargo build --release --quiet -p berth --no-default-features
cp target/release/berth "$out/without"
cargo build --release --quiet -p berth
cp target/release/berth "$out/with"
for b in without with; do
  strip -o "$out/$b.stripped" "$out/$b"
done

loaded() { size "$1" | awk 'NR == 2 { print $1 + $2 }'; }
row() {
  local what=$1 without=$2 with=$3
  local added=$((with - without))
  printf '%-34s %12s B %12s B %10s B (%s MiB)\n' "$what" "$without" "$with" "$added" \
    "$(awk -v a="$added" 'BEGIN { printf "%.2f", a / 1048576 }')"
}
printf '%-34s %14s %14s %12s\n' "" "without console" "with console" "added"
row "file" "$(stat -c %s "$out/without")" "$(stat -c %s "$out/with")"
row "stripped" "$(stat -c %s "$out/without.stripped")" "$(stat -c %s "$out/with.stripped")"
row "loaded sections (text + data)" "$(loaded "$out/without")" "$(loaded "$out/with")"
