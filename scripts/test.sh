#!/usr/bin/env bash
# The whole test suite: unit tests and end-to-end tests against the real
# Docker engine (started when none answers), SQLite, HTTP server and binary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-docker.sh
# A real local registry for the pull tests (no outside registry is reachable).
command -v docker-registry >/dev/null 2>&1 || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null
}
bash scripts/images.sh
# Prometheus's promtool checks the /metrics exposition; rsyslog receives
# shipped logs.
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v rsyslogd >/dev/null 2>&1 || [ -x /usr/sbin/rsyslogd ] || need+=(rsyslog)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# htpasswd for the private-registry tests; git (and `git daemon`) for builds from git.
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
command -v git >/dev/null 2>&1 || need+=(git)
# The dashboard's browser tests drive Debian's headless chromium through its
# chromedriver (WebDriver).
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
# PostgreSQL's server: the store's conformance suite and the fleet tests
# make clusters of their own with it (initdb in a temporary folder), unless
# GANTRY_TEST_DATABASE_URL names one.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# An S3-compatible server (moto, from PyPI) for the object-store tests.
moto=/var/tmp/gantry-moto/bin/moto_server
if [ ! -x "$moto" ]; then
  python3 -m venv /var/tmp/gantry-moto
  /var/tmp/gantry-moto/bin/pip install --quiet --disable-pip-version-check 'moto[server]'
fi
export GANTRY_TEST_MOTO="$moto"
# Iron.io's own clients for the IronWorker API tests: Python's iron-worker
# (PyPI) and, where Node is installed, the npm iron_worker client.
iron=/var/tmp/gantry-iron/bin/python
if ! "$iron" -c 'import iron_worker' >/dev/null 2>&1; then
  python3 -m venv /var/tmp/gantry-iron
  /var/tmp/gantry-iron/bin/pip install --quiet --disable-pip-version-check 'iron-worker==1.3.8'
fi
export GANTRY_TEST_IRON_PYTHON="$iron"
if command -v npm >/dev/null 2>&1; then
  if [ ! -d /var/tmp/gantry-iron-node/node_modules/iron_worker ]; then
    mkdir -p /var/tmp/gantry-iron-node
    (cd /var/tmp/gantry-iron-node && npm init -y >/dev/null && npm install --silent iron_worker >/dev/null)
  fi
  export GANTRY_TEST_IRON_NODE=/var/tmp/gantry-iron-node
fi
# schemathesis (PyPI) fuzzes the API against its own OpenAPI document.
st=/var/tmp/gantry-schemathesis/bin/schemathesis
if [ ! -x "$st" ]; then
  python3 -m venv /var/tmp/gantry-schemathesis
  /var/tmp/gantry-schemathesis/bin/pip install --quiet --disable-pip-version-check 'schemathesis>=4,<5'
fi
export GANTRY_TEST_SCHEMATHESIS="$st"
cargo test --workspace --locked "$@"
# The job, limits and logs suites again with warm starts on (every gantry the
# harness starts runs --warm true with the test image listed); the warm::
# module compares the two modes directly. Skipped when arguments narrow the run.
if [ $# -eq 0 ]; then
  GANTRY_TEST_WARM=1 cargo test -p gantry-cli --test it --locked -- jobs:: limits:: logs::
  # The end-to-end suites again on PostgreSQL (every gantry the harness
  # starts gets a fresh database on the tests' own cluster): the same
  # behaviour as on SQLite. Left out: what reads the SQLite file itself
  # (api::, cli::), backup:: (SQLite's), engine:: and warm:: (store-neutral).
  GANTRY_TEST_POSTGRES=1 cargo test -p gantry-cli --test it --locked -- \
    jobs:: logs:: limits:: configs:: storage:: schedules:: pipelines:: webhooks:: \
    tenancy:: triggers:: fleet:: iron:: notifications:: keboola:: metrics:: images:: run:: \
    lifecycle:: dashboard:: openapi:: logship::
fi
