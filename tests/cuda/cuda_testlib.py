"""Shared helpers of the CUDA backend suite: runtime fixtures and float64
NumPy references (simple loops and broadcasting on small data).

Every parity test runs on each runtime in RUNTIMES: the CPU emulator (always)
and the real CuPy runtime (skipped, visibly, without a CUDA device). Test
modules import the fixtures from here (there is deliberately no conftest.py
in this folder: a second module named ``conftest`` would shadow the one in
``tests/`` for ``from conftest import ...``).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from gpumeanshift.backends.base import cuda_available
from gpumeanshift.backends.cuda.backend import CudaBackend

os.environ.setdefault("OMP_WAIT_POLICY", "passive")


def _no_gpu_reason():
    try:
        import cupy  # noqa: F401
    except Exception as exc:
        return f"CupyRuntime needs CuPy and a CUDA device: cupy does not import ({exc})"
    if not cuda_available():
        return "CupyRuntime needs a CUDA device: CuPy reports none"
    return None


RUNTIMES = [
    pytest.param("emulated", id="emulated"),
    pytest.param("cupy", id="cupy", marks=[
        pytest.mark.gpu,
        pytest.mark.skipif(_no_gpu_reason() is not None, reason=str(_no_gpu_reason())),
    ]),
]


def make_runtime(kind: str, **options):
    if kind == "emulated":
        from gpumeanshift.testing import EmulatedRuntime

        return EmulatedRuntime(**options)
    from gpumeanshift.backends.cuda.runtime import CupyRuntime

    return CupyRuntime()


@pytest.fixture(params=RUNTIMES)
def runtime_kind(request):
    return request.param


@pytest.fixture
def make_backend(runtime_kind):
    """Factory: CudaBackend on a fresh runtime of the parametrized kind."""

    def factory(runtime_options=None, **options):
        return CudaBackend(make_runtime(runtime_kind, **(runtime_options or {})), **options)

    factory.kind = runtime_kind
    return factory


def to_numpy(a):
    """Host copy of a backend result (NumPy or CuPy)."""
    get = getattr(a, "get", None)
    return np.asarray(get() if callable(get) and not isinstance(a, np.ndarray) else a)


def host_result(res):
    """A :class:`ShiftResult` with its arrays copied to the host, to compare
    with host references (CuPy, and the strict emulator, refuse mixing)."""
    return dataclasses.replace(res, modes=to_numpy(res.modes), n_iter=to_numpy(res.n_iter),
                               intensity=to_numpy(res.intensity),
                               converged=to_numpy(res.converged))


# ---------------------------------------------------------------- references
def ref_shift(X, seeds, bandwidth, kernel, max_iter, tol, truncate=None):
    """scikit-learn's per-seed loop, float64, one seed at a time (the spec).
    ``truncate``: Gaussian weights beyond this many bandwidths dropped."""
    X = np.asarray(X, np.float64)
    h = float(bandwidth)
    m, d = seeds.shape
    modes = np.asarray(seeds, np.float64).copy()
    n_iter = np.zeros(m, np.int64)
    inten = np.zeros(m, np.int64)
    conv = np.zeros(m, bool)
    for s in range(m):
        pos = modes[s].copy()
        it = 0
        while True:
            d2 = ((X - pos) ** 2).sum(axis=1)
            within = d2 <= h * h
            cnt = int(within.sum())
            w = within.astype(np.float64) if kernel == "flat" else np.exp(-d2 / (2 * h * h))
            if truncate is not None and kernel == "gaussian":
                w[d2 > (truncate * h) ** 2] = 0.0
            if not w.sum() > 0:
                cnt = 0
                break
            new = w @ X / w.sum()
            moved = np.linalg.norm(new - pos)
            pos = new
            if moved <= tol * h:
                conv[s] = True
                break
            if it == max_iter:
                break
            it += 1
        modes[s], n_iter[s], inten[s] = pos, it, cnt
    return modes, n_iter, inten, conv


def ref_dist(X, Q):
    X = np.asarray(X, np.float64)
    Q = np.asarray(Q, np.float64)
    return np.sqrt(((Q[:, None, :] - X[None, :, :]) ** 2).sum(axis=2))


def ref_nearest(X, C):
    D = ref_dist(C, X)  # (n, k)
    lab = np.argmin(D, axis=1)  # first minimum: lowest index on ties
    return lab, D[np.arange(len(X)), lab]


def ref_count_within(X, Q, r):
    return (ref_dist(X, Q) <= r).sum(axis=1)


def ref_kth(X, Q, k):
    return np.sort(ref_dist(X, Q), axis=1)[:, k - 1]


def ref_kernel_sum(X, Q, h, kernel):
    u2 = ref_dist(X, Q) ** 2 / (h * h)
    w = (u2 <= 1).astype(float) if kernel == "flat" else np.exp(-u2 / 2)
    return w.sum(axis=1)


def blobs(n, d, *, centers=3, spread=4.0, std=0.5, seed=0, dtype=np.float64):
    """Well-separated Gaussian blobs (offset from the origin on purpose)."""
    rng = np.random.default_rng(seed)
    C = rng.uniform(-spread, spread, (centers, d)) + 10.0
    lab = rng.integers(0, centers, n)
    return (C[lab] + rng.normal(0, std, (n, d))).astype(dtype)
