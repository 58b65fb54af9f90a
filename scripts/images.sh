#!/usr/bin/env bash
# Builds the images Gantry's tests, demo and benchmarks use, locally (no
# registry is reachable). Cached: rebuilt only when missing.
# GANTRY_IMAGES=busybox builds only the small one (quick start, benchmarks).
#
# gantry-test/busybox:2 — FROM scratch plus Debian's static busybox.
set -euo pipefail

img=gantry-test/busybox:2
if ! docker image inspect "$img" >/dev/null 2>&1; then

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
rm -rf "$root"
trap - EXIT
echo "images.sh: built $img" >&2
fi

# gantry-test/python:1 — a Debian root filesystem (debootstrap, minbase +
# python3) with the keboola.component library pip-installed into it from the
# host (--target), for the Keboola-compatibility tests. Cached: the rootfs in
# /var/tmp and the image are rebuilt only when missing.
py=gantry-test/python:1
if [ "${GANTRY_IMAGES:-all}" = busybox ] || docker image inspect "$py" >/dev/null 2>&1; then exit 0; fi

rootfs=/var/tmp/gantry-python-rootfs
if [ ! -x "$rootfs/usr/bin/python3" ]; then
  command -v debootstrap >/dev/null 2>&1 || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  # The Debian mirror this machine's apt already uses.
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '/^deb / && $3 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || { echo "images.sh: no Debian mirror found in apt's sources" >&2; exit 1; }
  suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  echo "images.sh: debootstrap $suite (a few minutes, once)" >&2
  rm -rf "$rootfs.tmp"
  debootstrap --variant=minbase --include=python3 "$suite" "$rootfs.tmp" "$mirror" >/tmp/gantry-debootstrap.log 2>&1 \
    || { echo "images.sh: debootstrap failed; see /tmp/gantry-debootstrap.log" >&2; exit 1; }
  mv "$rootfs.tmp" "$rootfs"
fi
pyver=$("$rootfs/usr/bin/python3" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")' 2>/dev/null || chroot "$rootfs" python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
site="$rootfs/usr/local/lib/python$pyver/dist-packages"
if [ ! -d "$site/keboola/component" ]; then
  mkdir -p "$site"
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-conflicts \
    --python-version "$pyver" --only-binary=:all: --platform manylinux2014_x86_64 \
    --target "$site" keboola.component
fi
tar -C "$rootfs" --exclude=./proc --exclude=./sys --exclude=./dev -c . \
  | docker import --change 'CMD ["python3"]' --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' - "$py" >/dev/null
echo "images.sh: built $py" >&2
