#!/usr/bin/env bash
# Prints the directory of an unpacked Debian kernel for the cgroup v2 guest (tests/vm/run.sh),
# downloading `linux-image-amd64`'s current kernel package once (apt-get download: nothing is
# installed on the host) into ${BERTH_VM_CACHE:-/var/cache/berth-vm}. The directory holds
# `vmlinuz`, `config` and `lib/modules/<version>/`.
set -euo pipefail
cache=${BERTH_VM_CACHE:-/var/cache/berth-vm}
mkdir -p "$cache"
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$pkg" ] || { apt-get update -qq >/dev/null; pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}'); }
[ -n "$pkg" ] || { echo "kernel.sh: cannot find the package linux-image-amd64 depends on" >&2; exit 1; }
dir=$cache/$pkg
if [ ! -f "$dir/vmlinuz" ]; then
  tmp=$(mktemp -d "$cache/dl.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download -qq "$pkg" 2>/dev/null) || { echo "kernel.sh: apt-get download $pkg failed" >&2; exit 1; }
  dpkg-deb -x "$tmp"/*.deb "$tmp/x"
  mkdir -p "$tmp/out/lib"
  mv "$tmp"/x/boot/vmlinuz-* "$tmp/out/vmlinuz"
  mv "$tmp"/x/boot/config-* "$tmp/out/config"
  mv "$tmp/x/lib/modules" "$tmp/out/lib/modules"
  rm -rf "$dir"
  mv "$tmp/out" "$dir"
fi
echo "$dir"
