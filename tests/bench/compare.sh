#!/usr/bin/env bash
# tests/bench/compare.sh — runs `emseg bench` and the PyTorch rendering (torch_bench.py) on
# the same Table 1 model, alternating them round by round so that drifting machine load
# hits both sides alike, and prints each side's median over the rounds and the ratio
# torch / emseg per figure: > 1 means emseg is faster or smaller for times and sizes; for
# train_gflops (a rate) it is the other way round. A benchmark, not a test.
#
# usage: tests/bench/compare.sh [--emseg PATH] [--rounds N] [--size S] [--steps K]
#                               [--bf16] [--torch-only]
#   --emseg PATH   the emseg binary (default: build/app/cli/emseg, else the newest
#                  build*/app/cli/emseg that is not a sanitizer build)
#   --bf16         both sides in mixed precision: `emseg bench --bf16` (bfloat16
#                  convolutions, float32 sums) against PyTorch's CPU autocast to bfloat16
#   --torch-only   measure only the PyTorch side, on purpose
# Both sides train with binary cross-entropy, the shipped model's loss.
# Exit status: 0 both sides measured (or --torch-only), 1 the torch side failed,
# 2 the emseg side was missing or failed (the torch figures are still printed).
#
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for both benchmark processes: they force
# OpenBLAS kernels and cache sizes, and a machine-specific value left in a shell would make
# the engine's sgemm (and numpy/torch's BLAS) unrepresentative of a fresh install.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=/usr/bin/python3   # Debian's python3 has torch; a pyenv python3 on PATH does not
emseg=""
rounds=3
size=512
steps=5
torch_only=0
bf16=()

die() { echo "compare.sh: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
  case $1 in
    --emseg) emseg=${2:-}; shift 2 || die "--emseg needs a path" ;;
    --rounds) rounds=${2:-}; shift 2 || die "--rounds needs a number" ;;
    --size) size=${2:-}; shift 2 || die "--size needs a number" ;;
    --steps) steps=${2:-}; shift 2 || die "--steps needs a number" ;;
    --torch-only) torch_only=1; shift ;;
    --bf16) bf16=(--bf16); shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done
for v in rounds size steps; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--$v must be a positive integer, got '${!v}'"
done

echo "# OPENBLAS_CORETYPE='${OPENBLAS_CORETYPE-<unset>}' and" \
     "OPENBLAS_L2_SIZE='${OPENBLAS_L2_SIZE-<unset>}' in the caller's environment;" \
     "both are unset for the benchmark processes"
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
echo "# OPENBLAS_NUM_THREADS='${OPENBLAS_NUM_THREADS-<unset>}'" \
     "OMP_NUM_THREADS='${OMP_NUM_THREADS-<unset>}' (left as they are); torch uses 2 threads"

if [ "$torch_only" = 0 ] && [ -z "$emseg" ]; then
  # build/ if present, else the newest other build; never a sanitizer build (ASan is
  # several times slower and would make any ratio meaningless).
  for candidate in "$root"/build/app/cli/emseg "$root"/build*/app/cli/emseg; do
    case $candidate in *san*) continue ;; esac
    if [ -x "$candidate" ] && { [ -z "$emseg" ] || [ "$candidate" -nt "$emseg" ]; }; then
      emseg=$candidate
    fi
    [ "$candidate" = "$root/build/app/cli/emseg" ] && [ -n "$emseg" ] && break
  done
fi
emseg_ok=1
if [ "$torch_only" = 1 ]; then
  emseg_ok=0
elif [ -n "$emseg" ] && [ -x "$emseg" ]; then
  echo "# emseg: $emseg"
elif [ -z "$emseg" ] || [ ! -x "$emseg" ]; then
  echo "# no emseg binary found (looked for ${emseg:-$root/build*/app/cli/emseg});" \
       "build one or pass --emseg PATH" >&2
  emseg_ok=0
fi
"$python" -c "import torch" 2>/dev/null || die "$python cannot import torch (apt-get install python3-torch)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Keeps only `name number` lines, so banners, warnings and text figures cannot break the sums.
figures() { awk 'NF == 2 && $2 ~ /^-?[0-9.]+([eE][-+]?[0-9]+)?$/ { print $1, $2 }' "$1"; }

run_side() {   # side round command...
  local side=$1 round=$2; shift 2
  local out="$work/fig.$side.$round" raw="$work/raw.$side.$round" rc=0
  echo "# round $round: $side: $*" >&2
  "$@" >"$raw" 2>"$raw.err" || rc=$?
  if [ "$rc" != 0 ]; then
    echo "# $side failed in round $round (exit $rc):" >&2
    tail -n 5 "$raw.err" | sed 's/^/#   /' >&2
    return 1
  fi
  figures "$raw" >"$out"
  [ -s "$out" ] || { echo "# $side printed no figures in round $round" >&2; return 1; }
  [ "$round" != 1 ] || grep -E '^(conv_backend|conv_path|mkldnn_available|threads|precision) ' "$raw" \
    | sed "s/^/# $side: /" >&2
  return 0
}

torch_ok=1
for ((r = 1; r <= rounds; r++)); do
  if [ "$emseg_ok" = 1 ]; then
    run_side emseg "$r" "$emseg" bench --size "$size" --steps "$steps" --loss bce \
      "${bf16[@]}" || emseg_ok=0
  fi
  if [ "$torch_ok" = 1 ]; then
    run_side torch "$r" "$python" "$here/torch_bench.py" --size "$size" --steps "$steps" \
      --loss bce "${bf16[@]}" || torch_ok=0
  fi
  [ "$torch_ok" = 1 ] || [ "$emseg_ok" = 1 ] || break
done

# Median over rounds of each figure of each side, then the table.
medians() {   # side -> "name median" lines
  cat "$work/fig.$1".* 2>/dev/null | sort -k1,1 -k2,2g | awk '
    { n[$1]++; v[$1, n[$1]] = $2 }
    END {
      for (k in n) {
        c = n[k]
        if (c % 2) print k, v[k, (c + 1) / 2]
        else printf "%s %.6g\n", k, (v[k, c / 2] + v[k, c / 2 + 1]) / 2
      }
    }' | sort
}
for side in torch emseg; do
  ok_var=${side}_ok
  if [ "${!ok_var}" = 1 ]; then medians "$side" >"$work/$side.med"; else : >"$work/$side.med"; fi
done

echo "# ${size}x${size}, batch 1, $steps timed steps per run, $rounds round(s);" \
     "medians over rounds; ratio = torch / emseg"
printf '%-22s %14s %14s %10s\n' figure emseg torch ratio
for name in params train_step_s_median infer_s_median peak_rss_mb train_gflops; do
  e=$(awk -v k="$name" '$1 == k { print $2 }' "$work/emseg.med")
  t=$(awk -v k="$name" '$1 == k { print $2 }' "$work/torch.med")
  ratio=$(awk -v e="$e" -v t="$t" 'BEGIN {
    if (e == "" || t == "" || e + 0 == 0) print "n/a"; else printf "%.3f", t / e }')
  printf '%-22s %14s %14s %10s\n' "$name" "${e:-n/a}" "${t:-n/a}" "$ratio"
done

[ "$torch_ok" = 1 ] || { echo "compare.sh: the torch side failed" >&2; exit 1; }
if [ "$torch_only" = 0 ] && [ "$emseg_ok" = 0 ]; then
  echo "compare.sh: the emseg side was missing or failed; only torch figures above" >&2
  exit 2
fi
exit 0
