#!/usr/bin/env bash
# The CUDA suite on a machine with a GPU: the same parity tests, on the real
# CupyRuntime as well as on the emulator. Fails (instead of skipping) when no
# device is usable, so a misconfigured GPU job cannot pass silently.
#
#   pip install -e ".[test,cuda12]"   # cupy-cuda12x
#   ci/gpu.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
"$PY" - <<'PYEOF'
import cupy
n = cupy.cuda.runtime.getDeviceCount()
assert n > 0, "no CUDA device"
p = cupy.cuda.runtime.getDeviceProperties(0)
print(f"GPU: {p['name'].decode()} (sm_{p['major']}{p['minor']}), CuPy {cupy.__version__}, "
      f"CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}")
PYEOF
# -rs lists skips: on a GPU machine none of the "cupy" cases may be skipped.
out=$(mktemp)
"$PY" -m pytest -p no:cacheprovider -o addopts="" -rs tests/cuda "$@" | tee "$out"
if grep -q "SKIPPED.*CupyRuntime" "$out"; then
    echo "FAIL: CupyRuntime cases were skipped on a GPU machine"; exit 1
fi
echo "gpu suite: OK"
