#!/usr/bin/env bash
# tools/run.sh — the README's run command: installs missing Debian packages, builds emseg
# (release build in build/), then runs the main job:
#   - with a display: the GTK 4 workbench (a demo project on first run), arguments passed on;
#   - without one (or with --demo): the headless demo — generate an EM-like stack, train a
#     small model on it, predict held-out slices and score them — in ./emseg-demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh build
if [ -f build/build.ninja ]; then meson setup --reconfigure build >/dev/null; else meson setup build >/dev/null; fi
meson compile -C build >/dev/null
emseg=build/app/cli/emseg

if [ "${1:-}" != "--demo" ] && [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [ -x build/ui/emseg-workbench ]; then
  exec build/ui/emseg-workbench "$@"
fi

out=emseg-demo
mkdir -p "$out"
echo "== headless demo in $out/ (no display; the workbench needs one)"
"$emseg" synth --images "$out/images.tif" --labels "$out/labels.tif" --size 256 --slices 12 --seed 7
"$emseg" train --images "$out/images.tif" --labels "$out/labels.tif" --slices 0-7 --val-slices 8-9 \
  --epochs 8 --loss bce --spec base_width=8,down=2/2,across=1 --seed 1 --out "$out/model.emsegmodel"
# Predict every slice; slices 10-11 took no part in training or validation.
"$emseg" predict --model "$out/model.emsegmodel" --images "$out/images.tif" --out "$out/prediction.tif"
"$emseg" evaluate --labels "$out/labels.tif" --pred "$out/prediction.tif" --slices 10-11
echo "== scores above are on the held-out slices 10-11; $out/prediction.tif holds cell-interior"
echo "   probabilities for all slices (ISBI convention: 1 = cell interior, 0 = membrane)"
