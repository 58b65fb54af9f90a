#!/usr/bin/env bash
# One command from a fresh Debian machine with Rust to a running Gantry:
# starts a Docker engine if none answers, builds Gantry, builds the demo
# image locally, starts `gantry up` on 127.0.0.1:8420 (home ./.gantry), and
# runs two demo jobs: the CSV component against a data folder (`gantry run`,
# no server), then a job through the server's queue (`gantry jobs submit`).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-docker.sh
echo "==> building gantry (release)"
cargo build --release --quiet
GANTRY_IMAGES=busybox bash scripts/images.sh
gantry=./target/release/gantry
export GANTRY_HOME=${GANTRY_HOME:-$PWD/.gantry}

echo
echo "==> demo 1: a component reads /data/in/tables/people.csv and writes /data/out/tables"
$gantry run examples/demo/job.yaml --data examples/demo/data
echo "--- examples/demo/data/out/tables/people_in_city.csv:"
cat examples/demo/data/out/tables/people_in_city.csv

echo
if ! curl -fsS http://127.0.0.1:8420/healthz >/dev/null 2>&1; then
  echo "==> starting gantry up (log: $GANTRY_HOME/up.log)"
  mkdir -p "$GANTRY_HOME"
  nohup $gantry up >"$GANTRY_HOME/up.log" 2>&1 &
  echo $! > "$GANTRY_HOME/up.pid"
  for _ in $(seq 1 50); do curl -fsS http://127.0.0.1:8420/healthz >/dev/null 2>&1 && break; sleep 0.2; done
fi
echo "==> demo 2: a job through the queue, its log followed live"
$gantry jobs submit examples/hello.yaml --follow
$gantry jobs list --limit 5
echo
echo "Gantry is running on http://127.0.0.1:8420 (stop it: kill \$(cat $GANTRY_HOME/up.pid))."
echo "Admin token: $GANTRY_HOME/token. Try: $gantry jobs submit examples/hello.yaml --wait"
