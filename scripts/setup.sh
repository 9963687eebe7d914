#!/usr/bin/env bash
# Installs what building and testing Berth needs on a fresh Debian 12 machine. Idempotent.
set -euo pipefail
packages=(libseccomp-dev pkg-config busybox-static runc skopeo umoci iproute2 nftables procps)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# The Docker CLI (a client only here) is a peer the tests drive against the engine's API.
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
if ! command -v cargo-nextest >/dev/null 2>&1 && ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
