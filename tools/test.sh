#!/usr/bin/env bash
# tools/test.sh — the README's test command and all that CI runs: installs missing
# packages, builds with -Werror, runs the default suites, then builds again with
# AddressSanitizer + UndefinedBehaviorSanitizer and runs them once more. Ends with one
# plain "N passed, N failed" line summed over both builds, and exits non-zero on any
# failure. A third build with ThreadSanitizer runs the engine-thread suite (the only code
# with threads of our own that share state). Extra arguments go to `meson test` (e.g.
# --suite engine).
set -uo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh test || exit 1

status=0
summaries=()
run_build() {
  local dir=$1; shift
  local opts=("$@")
  if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" "${opts[@]}" >/dev/null || return 1
  else
    meson setup "$dir" "${opts[@]}" >/dev/null || return 1
  fi
  meson compile -C "$dir" || return 1
  meson test -C "$dir" --no-suite isbi --print-errorlogs $EXTRA_TEST_ARGS
}

EXTRA_TEST_ARGS="$*"
echo "== build: release checks (-Werror)"
run_build build-test -Dwerror=true || status=1
echo "== build: AddressSanitizer + UndefinedBehaviorSanitizer"
run_build build-san -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false \
  -Doptimization=1 || status=1

echo "== build: ThreadSanitizer (engine thread suite)"
if [ -z "$EXTRA_TEST_ARGS" ]; then
  # Only the suite's own programs are built; setarch -R because gcc 12's TSan cannot map
  # its shadow memory under this kernel's high-entropy ASLR.
  if [ -f build-tsan/build.ninja ]; then
    meson setup --reconfigure build-tsan -Db_sanitize=thread -Db_lundef=false -Donednn=disabled >/dev/null || status=1
  else
    meson setup build-tsan -Db_sanitize=thread -Db_lundef=false -Donednn=disabled >/dev/null || status=1
  fi
  ninja -C build-tsan tests/enginethread/test-engine-protocol tests/enginethread/test-engine-train || status=1
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tools/tsan.supp" \
    meson test -C build-tsan --no-rebuild --suite enginethread --print-errorlogs \
      --wrapper "setarch $(uname -m) -R" || status=1
  # meson names the log after the wrapper
  logs="build-test/meson-logs/testlog.json build-san/meson-logs/testlog.json build-tsan/meson-logs/testlog-setarch.json"
else
  echo "(skipped: a test selection was given)"
  logs="build-test/meson-logs/testlog.json build-san/meson-logs/testlog.json"
fi

# One plain closing line over all runs, read from meson's own logs.
python3 - $logs <<'PY' || status=1
import json, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        failed += 1
        print(f"no test log at {path}: that build did not run its tests")
        continue
    for line in lines:
        r = json.loads(line)["result"]
        if r in ("OK", "EXPECTEDFAIL"): passed += 1
        elif r == "SKIP": skipped += 1
        else: failed += 1
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed or passed == 0 else 0)
PY
exit $status
