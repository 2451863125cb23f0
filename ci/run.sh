#!/usr/bin/env bash
# The whole CI run on a CPU-only machine, from a fresh clone:
#   1. a fresh virtual environment with the package and its test extra
#   2. the README's test command (unit, parity, sklearn and emulated-CUDA tests),
#      then once more in a second fresh environment with the lowest versions
#      pyproject.toml allows (ci/constraints-lowest.txt)
#   3. the wheel carries kernels/ (built wheel, not the editable install)
#   4. the CUDA kernels compile with NVRTC for every supported architecture,
#      with no register spills (bench/kernel_report.py)
#   5. the emulated kernels under AddressSanitizer and UBSan
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 OMP_WAIT_POLICY=passive

VENV="${CI_VENV:-$(mktemp -d)/venv}"
python3 -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip
python -m pip install -q ".[test,kernel-check]"

echo "== tests (the README's test command) =="
python -m pytest

echo "== tests again at the lowest allowed versions (ci/constraints-lowest.txt) =="
# Wheels only: a pin without a wheel for this Python fails here instead of
# compiling an old release from source.
deactivate
LOWEST_VENV="${CI_LOWEST_VENV:-$(mktemp -d)/venv-lowest}"
python3 -m venv "$LOWEST_VENV"
# shellcheck disable=SC1091
. "$LOWEST_VENV/bin/activate"
python -m pip install -q --upgrade pip
python -m pip install -q --only-binary=:all: -c ci/constraints-lowest.txt ".[test,kernel-check]"
pinned="$(sed -E 's/#.*//; s/[=<>!~ ].*//' ci/constraints-lowest.txt | grep . | paste -sd'|')"
python -m pip list --format=freeze | grep -iE "^($pinned)=="
python -m pytest
deactivate
# shellcheck disable=SC1091
. "$VENV/bin/activate"

echo "== wheel contents =="
python ci/check_wheel.py

echo "== NVRTC compile matrix: every kernel instantiation, sm_70 ... sm_120 =="
mkdir -p build
python ci/compile_kernels.py --json build/kernel-matrix.json

echo "== registers, spills, occupancy (fails on any spill) =="
python bench/kernel_report.py --from-json build/kernel-matrix.json

echo "== emulated kernels under AddressSanitizer and UBSan =="
bash ci/sanitize.sh
echo "== the GPU proof run, on the emulator (ci/gpu.sh --emulated) =="
GPU_REPORT_DIR=build/gpu-report-emulated bash ci/gpu.sh --emulated

echo "CI passed"
