#!/usr/bin/env bash
# The one-shot GPU proof run: install with the CUDA extra, then ci/gpu_proof.py
# (compile times and kernel attributes, the tests/cuda suite on CuPy,
# compute-sanitizer, streams and determinism, limits and numerics, speed).
# Finishes within 8 minutes from a fresh checkout on a machine with one NVIDIA
# GPU (sm_70 or newer) and writes report.json and report.md, step by step, to
# $GPU_REPORT_DIR, else $OUT, else ./gpu-report.
#
#   ci/gpu.sh                 # on the GPU machine (pip install ".[test,cuda12]" first)
#   ci/gpu.sh --no-install    # the environment is already installed
#   ci/gpu.sh --emulated      # the CPU emulator stands in, tiny sizes (CI)
#   --reuse-cache             # keep the environment's compile caches (no cold compile timed)
#
# Exit status: 0 when no check failed (a far-seed difference from the NumPy
# backend is reported as "differs" and does not fail the run), 1 otherwise,
# 124 when the 8-minute limit cut the run short (the report keeps every
# finished step and names the one that was running).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export OMP_WAIT_POLICY=passive PIP_DISABLE_PIP_VERSION_CHECK=1
LIMIT_S=${GPU_PROOF_LIMIT_S:-480}
start=$(date +%s)

emulated=0 install=1 reuse=0
for arg in "$@"; do
    case "$arg" in
        --emulated) emulated=1; install=0 ;;
        --no-install) install=0 ;;
        --reuse-cache) reuse=1 ;;
        *) echo "ci/gpu.sh: unknown argument '$arg' (use --emulated, --no-install, --reuse-cache)" >&2; exit 2 ;;
    esac
done
out_dir=${GPU_REPORT_DIR:-${OUT:-gpu-report}}
mkdir -p "$out_dir"

if [ "$install" = 1 ]; then
    echo "== pip install .[test,cuda12]"
    t0=$(date +%s%N)
    set +e
    "$PY" -m pip install -q ".[test,cuda12]" 2>&1 | tee "$out_dir/pip-install.log"
    rc=${PIPESTATUS[0]}
    set -e
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    GPU_PROOF_INSTALL_S=$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))
    export GPU_PROOF_INSTALL_S GPU_PROOF_INSTALL_RC=$rc
    [ "$rc" = 0 ] || echo "pip install failed (exit $rc); the proof runs on what is installed"
fi

# What is left of the 8 minutes, less a margin for writing the summary.
left=$(( LIMIT_S - ($(date +%s) - start) ))
budget=$(( left - 20 ))
[ "$budget" -gt 30 ] || { echo "no time left for the proof run ($left s)"; exit 124; }
args=(--out "$out_dir" --budget "$budget")
[ "$emulated" = 1 ] && args+=(--emulated)
[ "$reuse" = 1 ] && args+=(--reuse-cache)
set +e
timeout --signal=TERM --kill-after=5 "$left" "$PY" ci/gpu_proof.py "${args[@]}"
rc=$?
set -e
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "the proof run was cut short at ${LIMIT_S} s; partial report in $out_dir"
fi
exit "$rc"
