"""Random shapes around the tile and block boundaries (n, m near 128, every
compile-time d and generic ones), emulated kernels vs the float64 references."""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

from cuda_testlib import (host_result, ref_count_within, ref_kth, ref_nearest,  # noqa: E402
                          ref_shift, to_numpy)
from gpumeanshift.testing import emulated_backend  # noqa: E402

SIZES = st.sampled_from([1, 2, 31, 127, 128, 129, 200, 256, 257])
DIMS = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17])


def _data(seed, n, d, dtype, grid=False):
    rng = np.random.default_rng(seed)
    if grid:  # coarse grid: many exact ties and duplicate distances
        return rng.integers(0, 4, (n, d)).astype(dtype)
    return rng.normal(0, 1, (n, d)).astype(dtype)


@settings(max_examples=30, deadline=None, database=None)
@given(n=SIZES, m=SIZES, d=DIMS, seed=st.integers(0, 2**16), grid=st.booleans())
def test_neighbor_queries_match_reference(n, m, d, seed, grid):
    X = _data(seed, n, d, np.float64, grid)
    Q = _data(seed + 1, m, d, np.float64, grid)
    be = emulated_backend()
    lab, dist = (to_numpy(a) for a in be.nearest(Q, X))
    r_lab, r_dist = ref_nearest(Q, X)
    np.testing.assert_array_equal(lab, r_lab)  # ties (grid data) -> lowest index
    np.testing.assert_allclose(dist, r_dist, rtol=1e-12, atol=1e-12)
    r = float(np.sqrt(d))
    np.testing.assert_array_equal(to_numpy(be.count_within(X, Q, r)),
                                  ref_count_within(X, Q, r))
    k = 1 + seed % n
    np.testing.assert_allclose(to_numpy(be.kth_neighbor_distance(X, Q, k)), ref_kth(X, Q, k),
                               rtol=1e-13, atol=1e-13)


@settings(max_examples=20, deadline=None, database=None)
@given(n=SIZES, m=st.sampled_from([1, 5, 127, 129]), d=DIMS, seed=st.integers(0, 2**16),
       kernel=st.sampled_from(["flat", "gaussian"]), split=st.booleans(),
       steps=st.sampled_from([1, 3, 32]))
def test_shift_matches_reference(n, m, d, seed, kernel, split, steps):
    X = _data(seed, n, d, np.float64)
    seeds = X[np.arange(m) % n] + 0.01
    h = 1.5 * np.sqrt(d)
    be = emulated_backend(split=split, n_splits=2, iters_per_launch=steps, split_steps=steps)
    res = host_result(be.shift(X, seeds, bandwidth=h, kernel=kernel, max_iter=50, tol=1e-4))
    ref = ref_shift(X, seeds, h, kernel, 50, 1e-4)
    np.testing.assert_allclose(res.modes, ref[0], rtol=0, atol=1e-8 * h)
    np.testing.assert_array_equal(res.n_iter, ref[1])
    np.testing.assert_array_equal(res.intensity, ref[2])
    np.testing.assert_array_equal(res.converged, ref[3])
