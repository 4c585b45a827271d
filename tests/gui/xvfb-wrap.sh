#!/bin/sh
# xvfb-wrap.sh — runs one GUI test program on a private X server, so the gui suite works
# in CI with no display. The program's TAP goes to stdout unchanged. Without xvfb-run the
# test reports itself skipped (visibly, in TAP), never passed.
if ! command -v xvfb-run >/dev/null 2>&1; then
  echo "1..0 # SKIP xvfb-run not installed (tools/deps.sh test installs xvfb)"
  exit 0
fi
exec xvfb-run -a -s "-screen 0 1600x1200x24 -nolisten tcp" "$@"
