#!/bin/sh
# tools/tsan-enginethread.sh — the ThreadSanitizer run of the engine-thread suite: builds
# the two test programs with -Db_sanitize=thread in build-enginethread-tsan (only those
# targets, so unrelated parts of the tree do not have to build) and runs them.
#
# setarch -R: gcc 12's TSan cannot map its shadow memory under the high-entropy ASLR of
# recent kernels ("FATAL: ThreadSanitizer: unexpected memory mapping"); disabling
# randomization for the test process avoids it.
# TSAN_OPTIONS: halt on the first report so a race fails the run; tools/tsan.supp lists
# what is suppressed and why (uninstrumented libraries only).
set -eu
cd "$(dirname "$0")/.."
dir=build-enginethread-tsan
if [ ! -d "$dir" ]; then
  meson setup "$dir" -Db_sanitize=thread -Db_lundef=false -Dbuildtype=debugoptimized >/dev/null
fi
ninja -C "$dir" tests/enginethread/test-engine-protocol tests/enginethread/test-engine-train
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(pwd)/tools/tsan.supp"
export G_TEST_SRCDIR="$(pwd)/tests" G_TEST_BUILDDIR="$(pwd)/$dir/tests"
status=0
for t in protocol train; do
  echo "== test-engine-$t (ThreadSanitizer)"
  setarch "$(uname -m)" -R "$dir/tests/enginethread/test-engine-$t" --tap || status=1
done
exit $status
