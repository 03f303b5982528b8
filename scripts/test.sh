#!/usr/bin/env bash
# The test command: makes sure the machine has what the tests need
# (scripts/setup-test-host.sh: Debian packages, a Docker engine), then runs
# every test of the workspace against the real Docker engine. Extra arguments
# go to `cargo test` (e.g. `scripts/test.sh -p berth --test lifecycle`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-test-host.sh
printf '==> cargo test --workspace %s\n' "$*"
cargo test --workspace "$@"
