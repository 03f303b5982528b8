#!/usr/bin/env bash
# berth on the 3-node swarm lab (scripts/swarmlab.sh): deploy time to 3 nodes
# against 1, bytes sent to each node for a first and a changed deploy against
# `docker save` of the image, and a node kill under load (time until the
# processes are back against Swarm's own reschedule of a plain service in the
# same run, failed GETs). Prints the `bench:` lines of the swarm tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -p berth --quiet
cargo test -p berth --test swarm --quiet -- --include-ignored --nocapture --test-threads 1 \
  bench_deploy_three_nodes_against_one a_lost_node 2>&1 | grep '^bench:'
