#!/usr/bin/env bash
# Makes sure a Docker engine answers on this machine.
# When none does: installs Debian's docker.io (and busybox-static, which the
# test images are made from) if missing, then starts dockerd as root in the
# background, logging to /tmp/gantry-dockerd.log.
set -euo pipefail

need_root() { if [ "$(id -u)" -ne 0 ]; then echo "ensure-docker: run as root (or start dockerd yourself)" >&2; exit 1; fi; }

if ! command -v busybox >/dev/null 2>&1 && [ ! -x /bin/busybox ]; then
  need_root
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi

if docker info >/dev/null 2>&1; then exit 0; fi

if ! command -v dockerd >/dev/null 2>&1; then
  need_root
  echo "ensure-docker: installing Debian's docker.io" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  need_root
  echo "ensure-docker: starting dockerd" >&2
  nohup dockerd >/tmp/gantry-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then break; fi
    sleep 0.5
  done
fi

docker info >/dev/null 2>&1 || { echo "ensure-docker: the engine did not answer; see /tmp/gantry-dockerd.log" >&2; exit 1; }
