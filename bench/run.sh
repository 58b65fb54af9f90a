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
# Cargo's target folder (CARGO_TARGET_DIR when set).
target="${CARGO_TARGET_DIR:-target}"
# The warm-start gate, static (std only), copied out of cargo's reach.
cargo rustc --release --locked -q -p gantry-gate --bin gantry-gate --target-dir "$target/gate-build" -- -C target-feature=+crt-static
cp "$target/gate-build/release/gantry-gate" "$target/release/gantry-gate-static.tmp"
mv "$target/release/gantry-gate-static.tmp" "$target/release/gantry-gate-static"
# The binaries' paths follow the target folder; flags given here come after
# (and so win, being the last occurrence, for options clap overrides).
exec "$target/release/gantry-bench" --gantry "$target/release/gantry" --gate "$target/release/gantry-gate-static" "$@"
