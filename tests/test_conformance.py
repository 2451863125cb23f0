"""gpumeanshift.testing.check_backend: the real backends pass it, and a backend
with any one interface method broken fails it, the failure naming that method."""

from __future__ import annotations

import re

import numpy as np
import pytest

from _emulation import emulated_backend_or_skip, emulated_param
from gpumeanshift.backends.base import cuda_available
from gpumeanshift.backends.numpy.backend import NumpyBackend
from gpumeanshift.testing import check_backend

F64 = (np.float64,)


def _failed_methods(exc: AssertionError) -> set[str]:
    return set(re.findall(r"^  - (\w+) \[", str(exc), flags=re.M))


def test_numpy_backend_passes_float64():
    check_backend(NumpyBackend(), dtypes=F64)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_numpy_backend_passes_float32(n_threads):
    # Far (orphan) seeds in the same call once widened a tile's expansion frame
    # until float32 misjudged points near the ball's boundary (a point 2.4%
    # outside in squared distance counted in); wide tiles are now split.
    check_backend(NumpyBackend(n_threads=n_threads), dtypes=(np.float32,))


@pytest.mark.parametrize("kind", [emulated_param()])
def test_emulated_cuda_backend_passes(kind):
    check_backend(emulated_backend_or_skip())


@pytest.mark.parametrize("kind", [emulated_param()])
def test_emulated_cuda_backend_split_scheme_passes(kind):
    check_backend(emulated_backend_or_skip(split=True, n_splits=3, iters_per_launch=2),
                  quick=True)


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device")
def test_cupy_backend_passes():
    check_backend("cupy")


# ------------------------------------------------- one method broken at a time
class NIterPlusOne(NumpyBackend):
    def shift(self, X, seeds, **kw):
        res = super().shift(X, seeds, **kw)
        return type(res)(res.modes, res.n_iter + 1, res.intensity, res.converged, res.algorithm)


class BoundaryOut(NumpyBackend):
    """Points at exactly one bandwidth left out of the flat mean."""

    def shift(self, X, seeds, *, bandwidth, **kw):
        return super().shift(X, seeds, bandwidth=bandwidth * (1 - 1e-12), **kw)


class ModesNudged(NumpyBackend):
    def shift(self, X, seeds, *, bandwidth, **kw):
        res = super().shift(X, seeds, bandwidth=bandwidth, **kw)
        modes = (res.modes + 1e-6 * bandwidth).astype(res.modes.dtype)
        return type(res)(modes, res.n_iter, res.intensity, res.converged, res.algorithm)


class GaussianTooNarrow(NumpyBackend):
    """exp(-d^2 / h^2) instead of exp(-d^2 / 2h^2)."""

    def shift(self, X, seeds, *, bandwidth, kernel, **kw):
        if kernel == "gaussian":
            bandwidth = bandwidth / np.sqrt(2.0)
        return super().shift(X, seeds, bandwidth=bandwidth, kernel=kernel, **kw)


class TiesToHighest(NumpyBackend):
    def nearest(self, X, centers):
        lab, dist = super().nearest(X, np.ascontiguousarray(centers[::-1]))
        return len(centers) - 1 - lab, dist


class CountStrict(NumpyBackend):
    """distance < radius instead of <=."""

    def count_within(self, X, queries, radius, **kw):
        return super().count_within(X, queries, radius * (1 - 1e-12), **kw)


class KthQueryNotCounted(NumpyBackend):
    def kth_neighbor_distance(self, X, queries, k, *, weights=None):
        if weights is not None:
            return super().kth_neighbor_distance(X, queries, min(k + 1, weights.sum()),
                                                 weights=weights)
        return super().kth_neighbor_distance(X, queries, min(k + 1, len(X)))


class KernelSumOff(NumpyBackend):
    def kernel_sum(self, X, queries, **kw):
        return super().kernel_sum(X, queries, **kw) * (1 + 1e-6)


class NaiveLogDensity(NumpyBackend):
    """log(kernel_sum): -inf far from the data for the Gaussian."""

    def log_kernel_density(self, X, queries, **kw):
        with np.errstate(divide="ignore"):
            return np.log(self.kernel_sum(X, queries, **kw))


class FlatLogFinite(NumpyBackend):
    """log(max(count, 1)): 0 instead of -inf where no point is within reach."""

    def log_kernel_density(self, X, queries, *, bandwidth, kernel, **kw):
        out = super().log_kernel_density(X, queries, bandwidth=bandwidth, kernel=kernel, **kw)
        return np.maximum(out, 0.0) if kernel == "flat" else out


class KthRaises(NumpyBackend):
    def kth_neighbor_distance(self, X, queries, k, **kw):
        raise NotImplementedError("kth_neighbor_distance")


class ShiftIgnoresWeights(NumpyBackend):
    def shift(self, X, seeds, *, weights=None, **kw):
        return super().shift(X, seeds, **kw)


class CountIgnoresWeights(NumpyBackend):
    def count_within(self, X, queries, radius, *, weights=None):
        return super().count_within(X, queries, radius)


class KthCountsRows(NumpyBackend):
    """k taken as a number of rows whatever the weights."""

    def kth_neighbor_distance(self, X, queries, k, *, weights=None):
        if weights is not None:
            keep = weights > 0
            X = X[keep]
            k = min(int(k), len(X))
        return super().kth_neighbor_distance(X, queries, k)


class DensityIgnoresWeights(NumpyBackend):
    def log_kernel_density(self, X, queries, *, weights=None, **kw):
        return super().log_kernel_density(X, queries, **kw)


class PartialSumsNoOrigin(NumpyBackend):
    """Sums in the frame x / h whatever the origin (the chunks then disagree)."""

    def partial_sums(self, X, seeds, *, origin=None, **kw):
        return super().partial_sums(X, seeds, **kw)


class PartialSumsBoundaryOut(NumpyBackend):
    """exact=True decided by the rounded expansion (a point at exactly h may drop)."""

    def partial_sums(self, X, seeds, *, bandwidth, exact=False, **kw):
        if not exact:
            return super().partial_sums(X, seeds, bandwidth=bandwidth, **kw)
        return super().partial_sums(X, np.nextafter(seeds, np.inf), bandwidth=bandwidth * (1 - 1e-15),
                                    exact=True, **kw)


class PartialSumsIgnoresWeights(NumpyBackend):
    def partial_sums(self, X, seeds, *, weights=None, **kw):
        return super().partial_sums(X, seeds, **kw)


@pytest.mark.parametrize("broken, method, what", [
    (PartialSumsNoOrigin, "partial_sums", "sums / weight"),
    (PartialSumsBoundaryOut, "partial_sums", "integer lattice d=2, h=1, float64, flat, exact"),
    (PartialSumsIgnoresWeights, "partial_sums", "weighted blobs"),
    (NIterPlusOne, "shift", "n_iter"),
    (BoundaryOut, "shift", "integer lattice"),
    (ModesNudged, "shift", "modes"),
    (GaussianTooNarrow, "shift", "gaussian"),
    (TiesToHighest, "nearest", "ties to the lowest index"),
    (CountStrict, "count_within", "integer lattice"),
    (KthQueryNotCounted, "kth_neighbor_distance", "k=1-th"),
    (KernelSumOff, "kernel_sum", "Gaussian kernel sums"),
    (NaiveLogDensity, "log_kernel_density", "expected finite"),
    (FlatLogFinite, "log_kernel_density", "expected -inf"),
    (KthRaises, "kth_neighbor_distance", "raised NotImplementedError"),
    (ShiftIgnoresWeights, "shift", "weighted blobs"),
    (CountIgnoresWeights, "count_within", "weighted integer lattice"),
    (KthCountsRows, "kth_neighbor_distance", "weighted blobs"),
    (DensityIgnoresWeights, "log_kernel_density", "weighted blobs"),
], ids=lambda v: v.__name__ if isinstance(v, type) else None)
def test_one_broken_method_fails_naming_it(broken, method, what):
    with pytest.raises(AssertionError) as info:
        check_backend(broken(), dtypes=F64, quick=True)
    assert _failed_methods(info.value) == {method}, str(info.value)
    assert what in str(info.value), str(info.value)


def test_every_failure_is_listed():
    class TwoBroken(TiesToHighest, KernelSumOff):
        pass

    with pytest.raises(AssertionError, match=r"failed \d+ conformance check") as info:
        check_backend(TwoBroken(), dtypes=F64, quick=True)
    assert _failed_methods(info.value) == {"nearest", "kernel_sum"}


@pytest.mark.parametrize("kwargs, match", [
    ({"kernels": ("epanechnikov",)}, "kernels"),
    ({"dtypes": (np.float16,)}, "dtypes"),
    ({"algorithms": ("kd_tree",)}, "algorithms"),
])
def test_bad_options_are_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_backend("numpy", **kwargs)


def test_not_a_backend_is_a_type_error():
    with pytest.raises(TypeError, match="backend"):
        check_backend(object())
