#!/bin/sh
# validate-data.sh DESKTOP_FILE METAINFO_FILE — TAP test: the desktop entry passes
# desktop-file-validate and the metainfo passes appstreamcli validate (offline). A
# missing tool is reported as a TAP skip for that check, not as a pass.
desktop=$1
metainfo=$2
echo "1..2"
if command -v desktop-file-validate >/dev/null 2>&1; then
  if out=$(desktop-file-validate "$desktop" 2>&1) && [ -z "$out" ]; then
    echo "ok 1 desktop-file-validate $desktop"
  else
    echo "not ok 1 desktop-file-validate $desktop"
    echo "$out" | sed 's/^/# /'
  fi
else
  echo "ok 1 # SKIP desktop-file-validate not installed (tools/deps.sh test)"
fi
if command -v appstreamcli >/dev/null 2>&1; then
  if out=$(appstreamcli validate --no-net --pedantic "$metainfo" 2>&1); then
    echo "ok 2 appstreamcli validate $metainfo"
  else
    echo "not ok 2 appstreamcli validate $metainfo"
  fi
  echo "$out" | sed 's/^/# /'
else
  echo "ok 2 # SKIP appstreamcli not installed (tools/deps.sh test)"
fi
