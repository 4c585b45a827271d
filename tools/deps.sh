#!/usr/bin/env bash
# tools/deps.sh — installs the Debian 12 packages emseg needs to build, run and test,
# only those missing. Usage: tools/deps.sh [build|test]  (test adds Xvfb and checkers).
set -euo pipefail
want=(gcc pkg-config meson ninja-build python3 libopenblas-dev libdnnl-dev libtiff-dev libsqlite3-dev
      libpng-dev libglib2.0-dev libcairo2-dev libgtk-4-dev)
if [ "${1:-build}" = test ]; then
  want+=(xvfb xauth libtiff-tools sqlite3 desktop-file-utils appstream python3-numpy
         python3-tifffile locales)
fi
missing=()
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "emseg: installing Debian packages: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The tests run the workbench under a decimal-comma locale too (tests/gui/meson.build:
# gui-comma-locale, tests/engine: /model/file/comma-locale); Debian ships no locale but C.
if [ "${1:-build}" = test ] && ! locale -a 2>/dev/null | grep -qi '^de_DE\.utf-\?8$'; then
  echo "emseg: generating the de_DE.UTF-8 locale for the tests"
  "${sudo_cmd[@]}" localedef -i de_DE -f UTF-8 de_DE.UTF-8
fi
