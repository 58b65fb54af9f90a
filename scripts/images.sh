#!/usr/bin/env bash
# Builds the images Gantry's tests, demo and benchmarks use, locally (no
# registry is reachable): gantry-test/busybox:2 is FROM scratch plus Debian's
# static busybox. Cached: rebuilt only when missing.
set -euo pipefail

img=gantry-test/busybox:2
if docker image inspect "$img" >/dev/null 2>&1; then exit 0; fi

bb=$(command -v busybox || true)
[ -x /bin/busybox ] && bb=/bin/busybox
[ -n "$bb" ] || { echo "images.sh: busybox-static is not installed (apt-get install busybox-static)" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/tmp" "$root/data" "$root/etc"
chmod 1777 "$root/tmp"
cp "$bb" "$root/bin/busybox"
for applet in $("$bb" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
echo 'nobody:x:65534:65534:nobody:/nonexistent:/bin/sh' >> "$root/etc/passwd"
echo 'root:x:0:' > "$root/etc/group"
echo 'nogroup:x:65534:' >> "$root/etc/group"
tar -C "$root" -c . | docker import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' - "$img" >/dev/null
echo "images.sh: built $img" >&2
