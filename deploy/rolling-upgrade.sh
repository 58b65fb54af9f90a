#!/usr/bin/env bash
# Rolling upgrade of a fleet's workers, one host at a time, so that the
# others keep running jobs: drain (claims stop, running jobs finish), stop,
# install the new binary, start (the worker registers as active again).
# Usage: deploy/rolling-upgrade.sh NEW_BINARY HOST...   (run where `gantry`
# reaches a server with an admin token: GANTRY_URL, GANTRY_TOKEN)
set -euo pipefail
new=$1; shift
for host in "$@"; do
  echo "== $host: draining"
  gantry workers drain "$host" --wait
  ssh "$host" sudo systemctl stop gantry-worker
  scp "$new" "$host:/tmp/gantry.new"
  ssh "$host" sudo install -m 0755 /tmp/gantry.new /usr/local/bin/gantry
  ssh "$host" sudo systemctl start gantry-worker
  # Wait until it beats as active again before touching the next one.
  for _ in $(seq 1 60); do
    if gantry workers list --output json | python3 -c "import json,sys; w=[x for x in json.load(sys.stdin)['workers'] if x['id']=='$host']; sys.exit(0 if w and w[0]['state']=='active' else 1)"; then
      break
    fi
    sleep 1
  done
  echo "== $host: upgraded"
done
