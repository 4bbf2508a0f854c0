#!/usr/bin/env bash
# Installs the Debian 12 packages slitstep needs, only those that are missing.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libeigen3-dev libfftw3-dev libcfitsio-dev libceres-dev
      libboost-random-dev libgtest-dev libbenchmark-dev libtomlplusplus-dev libcli11-dev
      pybind11-dev libopenmpi-dev openmpi-bin fitsverify python3-numpy python3-astropy
      python3-matplotlib)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "slitstep: installing missing Debian packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
