#!/usr/bin/env bash
# Gantry's benchmark harness, in one command:  bash bench/run.sh [--quick]
# Starts a Docker engine if none answers, builds the busybox image and release
# binaries, then measures (see bench/README.md). Extra flags go to gantry-bench.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-docker.sh
GANTRY_IMAGES=busybox bash scripts/images.sh
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core >/dev/null || true
}
cargo build --release --locked -p gantry-cli -p gantry-bench
exec ./target/release/gantry-bench "$@"
