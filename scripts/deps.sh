#!/bin/sh
# Installs the Debian packages bnlab needs that are missing; does nothing when
# all are present. Usage: scripts/deps.sh [extra-package ...]
set -eu
PKGS="gcc make pkg-config liblua5.4-dev libopenblas-openmp-dev libpng-dev zlib1g-dev
      libcmocka-dev libreadline-dev libfreetype-dev fonts-dejavu-core dataset-fashion-mnist python3
      $*"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
