#!/usr/bin/env bash
# Run the emulated kernels under AddressSanitizer + UBSan; fail on any report.
#
# The emulator builds kernels/*.cu with -fsanitize=address,undefined
# -fno-sanitize-recover=all (GPUMEANSHIFT_EMU_SANITIZE=1); libasan is preloaded
# into Python so NumPy's buffers (the emulated device memory) get redzones.
# Step 1 checks the check: a copy of the kernels with an out-of-bounds tile
# load must be reported. Step 2 runs the parity suites (brute, grid, density,
# image filter, window tracking, sample weights, device data) on the real kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
CXX=${CXX:-g++}
LIBASAN=$($CXX -print-file-name=libasan.so)
[ -f "$LIBASAN" ] || { echo "libasan not found ($LIBASAN)"; exit 1; }
export GPUMEANSHIFT_EMU_SANITIZE=1
export GPUMEANSHIFT_EMU_CACHE=${GPUMEANSHIFT_EMU_CACHE:-$(mktemp -d)/emu}
export OMP_WAIT_POLICY=passive
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

echo "== sanitizer self-check: an out-of-bounds tile load must be reported"
set +e
out=$(LD_PRELOAD="$LIBASAN" "$PY" - <<'PYEOF' 2>&1
import numpy as np
from gpumeanshift.backends.cuda import runtime as R
from gpumeanshift.backends.cuda.backend import CudaBackend
from gpumeanshift.testing import EmulatedRuntime
src = R.kernel_source()
bad = "for (int i = threadIdx.x; i < total; i += blockDim.x)"
assert src.count(bad) == 1
src = src.replace(bad, "for (int i = threadIdx.x; i <= total; i += blockDim.x)")
X = np.random.default_rng(0).normal(size=(200, 3))
CudaBackend(EmulatedRuntime(source=src)).count_within(X, X[:5], 1.0)
print("NOT REPORTED")
PYEOF
)
rc=$?
set -e
if [ $rc -eq 0 ] || ! grep -q "AddressSanitizer" <<<"$out"; then
    echo "$out" | tail -20
    echo "FAIL: the sanitizer did not catch a known out-of-bounds read"; exit 1
fi
echo "   caught ($(grep -m1 -o 'AddressSanitizer: [a-z-]*' <<<"$out"))"

echo "== parity suite under ASan + UBSan"
LD_PRELOAD="$LIBASAN" "$PY" -m pytest -q -p no:cacheprovider -o addopts="" \
    tests/cuda/test_cuda_parity.py tests/cuda/test_cuda_properties.py \
    tests/cuda/test_cuda_grid.py tests/cuda/test_cuda_density.py \
    tests/cuda/test_cuda_segmentation.py tests/cuda/test_cuda_tracking.py \
    tests/cuda/test_cuda_weights.py tests/cuda/test_cuda_device_io.py \
    -k "(emulated or properties or weights or device_io) and not harness" "$@"
echo "sanitize: OK (no ASan/UBSan report)"
