"""The CUDA kernels' floating point and the emulated device's limits.

Far seeds (weights that underflow), float32 as NVRTC builds it (flush to
zero, FMA contraction), deferred stream work, 32-bit index limits. Run on
the CPU emulator, which models each of these (see docs/gpu.md).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from gpumeanshift.backends import runtime as _rt
from gpumeanshift.backends.numpy_backend import NumpyBackend
from gpumeanshift.testing import emulated_backend

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import example, given, settings, strategies as st  # noqa: E402

_SHIFT = dict(kernel="gaussian", max_iter=300, tol=1e-3)
_BE = {}


def _backend(split=False):
    if split not in _BE:
        _BE[split] = emulated_backend(split=split, n_splits=2 if split else None)
    return _BE[split]


def _both(X, seeds, split=False, h=1.0):
    gpu = _backend(split).shift(X, seeds, bandwidth=h, **_SHIFT)
    cpu = NumpyBackend().shift(X, seeds, bandwidth=h, **_SHIFT)
    return gpu, cpu


# --------------------------------------------------------------- far seeds
@pytest.mark.parametrize("split", [False, True])
def test_seed_38_bandwidths_away_float64(split):
    # Every weight is below 2^-1024: 1 / wsum overflowed to +inf (NaN modes).
    X = np.array([[0.0], [0.5]])
    seeds = np.array([[38.6], [38.3]])
    gpu, cpu = _both(X, seeds, split)
    ref = np.array([[0.25006096], [0.25006096]])
    np.testing.assert_allclose(cpu.modes, ref, atol=1e-8)
    np.testing.assert_allclose(gpu.modes, cpu.modes, rtol=0, atol=1e-12)
    assert gpu.n_iter.tolist() == cpu.n_iter.tolist() == [3, 3]
    assert gpu.intensity.tolist() == cpu.intensity.tolist() == [2, 2]
    assert gpu.converged.all()


def _assert_agree(gpu, cpu, dtype):
    """GPU and NumPy backends agree: same stop, same count, modes to rounding
    (float32: the kernel's exp2f Gaussian is within 2 ulp of NumPy's exp)."""
    assert gpu.converged.tolist() == cpu.converged.tolist()
    assert gpu.intensity.tolist() == cpu.intensity.tolist()
    assert np.isfinite(gpu.modes).all()
    if dtype == np.float64:
        assert gpu.n_iter.tolist() == cpu.n_iter.tolist()
        np.testing.assert_allclose(gpu.modes, cpu.modes, rtol=0, atol=1e-9)
    else:
        assert np.abs(gpu.n_iter - cpu.n_iter).max() <= 1
        np.testing.assert_allclose(gpu.modes, cpu.modes, rtol=0, atol=2e-3)


@settings(max_examples=40, deadline=None, database=None)
@given(dist=st.floats(0.0, 45.0), spread=st.floats(0.05, 1.0),
       dtype=st.sampled_from([np.float32, np.float64]), d=st.sampled_from([1, 2]),
       split=st.booleans())
# the bands where the weights are subnormal and 1 / wsum overflowed
@example(dist=38.2, spread=0.5, dtype=np.float64, d=1, split=False)
@example(dist=27.0, spread=0.5, dtype=np.float64, d=2, split=True)
@example(dist=14.1, spread=0.5, dtype=np.float32, d=1, split=False)
@example(dist=10.0, spread=0.5, dtype=np.float32, d=2, split=True)
def test_far_seeds_agree_with_numpy(dist, spread, dtype, d, split):
    """A seed ``dist`` bandwidths from the nearest of a few points: the CUDA
    kernels and the NumPy backend give the same result, whether the weights
    are normal, subnormal (the scaled reciprocal) or all zero (an orphan)."""
    X = np.zeros((3, d))
    X[:, 0] = [0.0, spread / 2, spread]
    direction = np.ones(d) / np.sqrt(d)
    seeds = np.stack([-dist * direction, X[-1] + dist * direction])
    gpu, cpu = _both(X.astype(dtype), seeds.astype(dtype), split)
    _assert_agree(gpu, cpu, dtype)
