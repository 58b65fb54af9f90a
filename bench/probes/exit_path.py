#!/usr/bin/env python3
"""Where a container's exit spends its time on this engine.

For N containers of IMAGE that print a line and exit, measures from the
moment containerd publishes the task's exit (its event stream, read with
`ctr events` on dockerd's containerd) to:
  - the end of the container's attach stream (where the log ends), and
  - the answer of `POST /containers/{id}/wait` (where the exit code comes).
Both are dockerd's exit path (task delete, state update, closing the
streams); neither is the job's.

    python3 bench/probes/exit_path.py [N] [IMAGE]

Needs root (the engine's sockets) and `ctr` (Debian's containerd package).
"""
import datetime
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time

DOCKER = "/var/run/docker.sock"
CONTAINERD = next(
    (p for p in ("/var/run/docker/containerd/containerd.sock", "/run/containerd/containerd.sock") if os.path.exists(p)),
    None,
)


class Unix(http.client.HTTPConnection):
    def __init__(self):
        super().__init__("localhost")

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(DOCKER)


def call(method, path, body=None):
    c = Unix()
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, r.read()


def when(stamp):
    date, clock = stamp.split(" ")
    whole, frac = clock.split(".")
    t = datetime.datetime.strptime(f"{date} {whole}", "%Y-%m-%d %H:%M:%S")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp() + float("0." + frac)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    image = sys.argv[2] if len(sys.argv) > 2 else "gantry-test/busybox:2"
    if CONTAINERD is None:
        sys.exit("no containerd socket found")
    events = subprocess.Popen(["ctr", "-a", CONTAINERD, "-n", "moby", "events"],
                              stdout=subprocess.PIPE, text=True)
    exits = {}

    def read_events():
        for line in events.stdout:
            m = re.match(r"(\S+ \S+) \+0000 UTC moby /tasks/exit (.*)", line)
            if m:
                exits[json.loads(m.group(2))["container_id"]] = when(m.group(1))

    threading.Thread(target=read_events, daemon=True).start()
    time.sleep(0.5)
    runs = []
    for _ in range(n):
        _, body = call("POST", "/containers/create", {
            "Image": image, "Cmd": ["sh", "-c", "sleep 0.2; echo hi; exit 3"],
            "AttachStdout": True, "AttachStderr": True,
            "HostConfig": {"NetworkMode": "none"}})
        cid = json.loads(body)["Id"]
        s = socket.socket(socket.AF_UNIX)
        s.connect(DOCKER)
        s.sendall(f"POST /containers/{cid}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n"
                  "Host: x\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n".encode())
        got = {}

        def attach():
            while s.recv(65536):
                pass
            got["eof"] = time.time()

        def wait():
            call("POST", f"/containers/{cid}/wait?condition=next-exit")
            got["wait"] = time.time()

        threads = [threading.Thread(target=attach), threading.Thread(target=wait)]
        for t in threads:
            t.start()
        time.sleep(0.05)
        call("POST", f"/containers/{cid}/start")
        for t in threads:
            t.join()
        runs.append((cid, got["eof"], got["wait"]))
        call("DELETE", f"/containers/{cid}?force=1")
    time.sleep(0.5)
    events.terminate()
    eof = [1000 * (e - exits[c]) for c, e, _ in runs if c in exits]
    wait = [1000 * (w - exits[c]) for c, _, w in runs if c in exits]
    print(f"{len(eof)} containers of {image}")
    print(f"containerd's exit event -> attach stream ends: median {statistics.median(eof):.1f} ms "
          f"(min {min(eof):.1f}, max {max(eof):.1f})")
    print(f"containerd's exit event -> /wait answers:       median {statistics.median(wait):.1f} ms "
          f"(min {min(wait):.1f}, max {max(wait):.1f})")


main()
