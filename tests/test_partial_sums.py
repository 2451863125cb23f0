"""Backend.partial_sums: one shift step's sums over a chunk of the data, on the
NumPy backend and the emulated CUDA backend (the real ms_shift_partial kernel
on the CPU), against a float64 reference from the definition; and the Dask
"data" strategy running it on the emulated CUDA backend."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from _emulation import emulated_backend_or_skip, emulated_param
from gpumeanshift import MeanShift
from gpumeanshift.backends.numpy import NumpyBackend

RNG = np.random.default_rng(5)
X = np.concatenate([RNG.normal(0.0, 0.4, (120, 2)) + 3.0, RNG.normal(0.0, 0.4, (120, 2)) - 1.0])
W = RNG.integers(0, 4, len(X)).astype(np.float64)
H = 0.7


def _backends():
    return [pytest.param("numpy", id="numpy"), pytest.param("emulated", marks=emulated_param().marks,
                                                            id="emulated-cuda")]


def _make(kind, **options):
    return NumpyBackend(n_threads=2) if kind == "numpy" else \
        emulated_backend_or_skip(split=True, n_splits=3, **options)


def _host(a):
    return np.asarray(a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else a)


def _reference(Xc, S, origin, kernel, w):
    Y = (Xc - origin) / H
    D2 = ((S[:, None, :] - Y[None, :, :]) ** 2).sum(axis=2)
    K = (D2 <= 1.0).astype(float) if kernel == "flat" else np.exp(-0.5 * D2)
    w = np.ones(len(Xc)) if w is None else w
    return (K * w) @ Y, K @ w, (D2 <= 1.0).astype(float) @ w


@pytest.mark.parametrize("kind", _backends())
@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
@pytest.mark.parametrize("weighted", [False, True])
def test_chunks_add_up_to_the_reference(kind, kernel, weighted):
    """The sums of three chunks in one frame add up to the whole data's."""
    be = _make(kind)
    origin = X.mean(axis=0)
    S = np.ascontiguousarray((X[::7] - origin) / H)
    w = W if weighted else None
    parts = [be.partial_sums(np.ascontiguousarray(X[a:b]), S, bandwidth=H, kernel=kernel,
                             origin=origin, weights=None if w is None else w[a:b])
             for a, b in ((0, 50), (50, 170), (170, len(X)))]
    sums = sum(_host(p.sums) for p in parts)
    weight = sum(_host(p.weight) for p in parts)
    count = sum(_host(p.count) for p in parts)
    r_sums, r_weight, r_count = _reference(X, S, origin, kernel, w)
    np.testing.assert_array_equal(count, r_count)
    assert count.dtype == (np.float64 if weighted else np.int64)
    np.testing.assert_allclose(weight, r_weight, rtol=1e-12)
    np.testing.assert_allclose(sums, r_sums, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", _backends())
def test_one_step_is_the_shift_with_max_iter_1(kind):
    """A step from the sums is the shift's first step (max_iter=1 stops after
    it): the modes agree to rounding."""
    be = _make(kind)
    seeds = np.ascontiguousarray(X[::11])
    p = be.partial_sums(X, seeds / H, bandwidth=H, kernel="gaussian")  # the frame x / H
    step = _host(p.sums) / _host(p.weight)[:, None] * H
    res = be.shift(X, seeds, bandwidth=H, kernel="gaussian", max_iter=0, tol=0.0)
    moved = _host(res.modes)  # max_iter=0: one step, not counted
    np.testing.assert_allclose(step, moved, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", _backends())
def test_exact_on_integers_is_bit_for_bit(kind):
    L = RNG.integers(0, 6, (150, 3)).astype(np.float64)
    S = np.ascontiguousarray(np.concatenate([L[::3], (L[1:40:2] + L[2:41:2]) / 2]))
    p = _make(kind).partial_sums(L, S, bandwidth=1.5, kernel="flat", exact=True)
    inside = np.stack([((L - s) ** 2).sum(axis=1) <= 2.25 for s in S]).astype(float)
    np.testing.assert_array_equal(_host(p.count), inside.sum(axis=1))
    np.testing.assert_array_equal(_host(p.sums), inside @ L)


@pytest.mark.parametrize("kind", _backends())
def test_exact_needs_the_flat_kernel(kind):
    with pytest.raises(ValueError, match="exact=True needs the flat kernel"):
        _make(kind).partial_sums(X, X[:3], bandwidth=H, kernel="gaussian", exact=True)


@pytest.mark.parametrize("kind", [emulated_param()])
def test_dask_data_strategy_on_the_emulated_cuda_backend(kind):
    """strategy="data" with the CUDA backend on the workers: the partial sums
    come from the emulated kernel; the fit is the single-machine one."""
    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    import gpumeanshift.dask as gdask

    be = emulated_backend_or_skip()
    with distributed.Client(processes=False, n_workers=2, threads_per_worker=1,
                            dashboard_address=":0", silence_logs=logging.ERROR):
        for kernel in ("flat", "gaussian"):
            params = dict(bandwidth=H, kernel=kernel, bin_seeding=True)
            ours = gdask.MeanShift(backend=be, strategy="data", **params).fit(
                da.from_array(X, chunks=70))
            ref = MeanShift(backend="numpy", **params).fit(X)
            assert ours.backend_ == "cupy"
            np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=0,
                                       atol=1e-9)
            np.testing.assert_array_equal(ours.labels_.compute(), ref.labels_)
            assert ours.n_iter_ == ref.n_iter_
            np.testing.assert_array_equal(ours.center_intensity_, ref.center_intensity_)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("d", [6, 11])
def test_bounded_dimensions_add_up_to_the_reference(d, weighted):
    """d outside the compiled set (6, 11): the split kernel's bounded path
    (seed and sums in registers, run-time d) on the emulated CUDA backend."""
    be = _make("emulated")
    rng = np.random.default_rng(d)
    Xd = rng.normal(0.0, 0.5, (150, d))
    w = rng.integers(0, 4, len(Xd)).astype(np.float64) if weighted else None
    origin = Xd.mean(axis=0)
    S = np.ascontiguousarray((Xd[::9] - origin) / H)
    p = be.partial_sums(Xd, S, bandwidth=H * np.sqrt(d), kernel="gaussian", origin=origin,
                        weights=w)
    Hd = H * np.sqrt(d)
    Y = (Xd - origin) / Hd
    D2 = ((S[:, None, :] - Y[None, :, :]) ** 2).sum(axis=2)
    K = np.exp(-0.5 * D2)
    ww = np.ones(len(Xd)) if w is None else w
    np.testing.assert_allclose(_host(p.sums), (K * ww) @ Y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_host(p.weight), K @ ww, rtol=1e-12)
    np.testing.assert_array_equal(_host(p.count), (D2 <= 1.0).astype(float) @ ww)
