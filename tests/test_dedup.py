"""The vectorized mode-deduplication pass against scikit-learn's sequential rule."""

import numpy as np
import pytest

from gpumeanshift.dedup import deduplicate


def sklearn_rule(modes, intensity, h):
    """scikit-learn's post-processing, written as it is there (a dict and a loop)."""
    d = {}
    for m, c in zip(map(tuple, modes), intensity):
        d[m] = c
    items = sorted(d.items(), key=lambda t: (t[1], t[0]), reverse=True)
    centers = np.array([t[0] for t in items])
    unique = np.ones(len(centers), dtype=bool)
    for i, c in enumerate(centers):
        if unique[i]:
            near = np.flatnonzero(np.sqrt(((centers - c) ** 2).sum(1)) <= h)
            unique[near] = False
            unique[i] = True
    return centers[unique], np.array([t[1] for t in items])[unique]


@pytest.mark.parametrize("k, d", [(1, 2), (50, 1), (700, 2), (1500, 3), (300, 10)])
def test_dedup_equals_sequential_rule(k, d):
    rng = np.random.default_rng(k + d)
    modes = rng.uniform(-5, 5, size=(k, d))
    modes[: k // 4] = modes[k // 4: 2 * (k // 4)]  # exact duplicates merge
    intensity = rng.integers(1, 6, size=k)  # many ties: order falls to coordinates
    got_c, got_i = deduplicate(modes, intensity, 1.0)
    ref_c, ref_i = sklearn_rule(modes, intensity, 1.0)
    np.testing.assert_array_equal(got_c, ref_c)
    np.testing.assert_array_equal(got_i, ref_i)


def test_dedup_boundary_is_inclusive():
    modes = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    centers, _ = deduplicate(modes, np.array([3, 2, 1]), 1.0)
    np.testing.assert_array_equal(centers, [[0.0, 0.0], [3.0, 0.0]])


def test_dedup_many_modes_is_fast_enough():
    # 40,000 modes on a coarse lattice: a pure-Python pairwise loop would take minutes.
    rng = np.random.default_rng(0)
    modes = rng.integers(0, 200, size=(40_000, 2)).astype(float) * 0.3
    centers, _ = deduplicate(modes, rng.integers(1, 50, size=40_000), 1.0)
    d = np.sqrt(((centers[:, None] - centers[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    assert d.min() > 1.0  # kept centers are pairwise farther than one bandwidth
