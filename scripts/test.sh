#!/usr/bin/env bash
# The whole test suite: unit tests and end-to-end tests against the real
# Docker engine (started when none answers), SQLite, HTTP server and binary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-docker.sh
bash scripts/images.sh
cargo test --workspace --locked "$@"
