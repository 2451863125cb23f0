"""The passes over the data before and after the shift: checks and the centre
(one pass), the weights, the rules of thumb, bin seeding and basin labels."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import dask.array as da

from .. import _driver
from .._labels import nearest_labels
from .._validation import check_sample_weight, is_device_array
from ..backends.base import resolve_backend
from ..bandwidth import rule_from_variances
from ..seeding import _cells_to_seeds
from ._cluster import _gather, _label_meta, _like
from ._tasks import _basin_outliers, _bin_block, _weighted_colsum, _weighted_sqdev

def _finite_and_center(client, X, W=None):
    """The column means (float64) and, when X is integer-valued float64 with
    ``n * max|x| < 2**53`` (``_spatial.integer_valued``), ``max|x|`` (else
    None), ``n`` and the weight when all weights are equal (else None), in
    one pass; ValueError on NaN or infinity.

    With weights ``W`` (a Dask array, chunked as X's rows) the same pass
    checks them as :func:`~gpumeanshift._validation.check_sample_weight`
    does (ValueError naming the problem); ``n`` is their sum. Unequal weights
    give weighted means and need to be integers for ``max|x|``.
    """
    host = lambda a: _driver.to_numpy(a)  # noqa: E731
    wanted = [da.isfinite(X).all(), X.mean(axis=0, dtype=np.float64)]
    if W is not None:
        bad, neg = ~da.isfinite(W), W < 0
        wx = da.map_blocks(_weighted_colsum, X, W[:, None], dtype=np.float64,
                           chunks=((1,) * X.numblocks[0], (X.shape[1],)),
                           meta=np.zeros((0, 0))).sum(axis=0)
        wanted += [wx, W.sum(), bad.sum(), da.argmax(bad), neg.sum(), da.argmax(neg),
                   (W == da.round(W)).all(), W.min(), W.max()]
    if X.dtype == np.float64:
        wanted += [(X == da.round(X)).all(), da.absolute(X).max()]
    got = [host(g) for g in client.compute(wanted, sync=True)]
    if not bool(got[0]):
        raise ValueError("X contains NaN or infinity; all values must be finite")
    count = X.shape[0]
    center, rest, integer_weights, common = got[1].astype(np.float64), got[2:], True, None
    if W is not None:
        wx, total, n_bad, first_bad, n_neg, first_neg, integer_weights, wmin, wmax = got[2:11]
        rest = got[11:]
        if n_bad:
            i = int(first_bad)
            raise ValueError(
                f"sample_weight must be finite: {int(n_bad)} value(s) are NaN or infinite "
                f"(first at index {i}: {float(host(client.compute(W[i], sync=True)))})")
        if n_neg:
            i = int(first_neg)
            raise ValueError(
                f"sample_weight must be >= 0: {int(n_neg)} value(s) are negative "
                f"(first at index {i}: {float(host(client.compute(W[i], sync=True)))})")
        total = float(total)
        if not total > 0:
            raise ValueError(
                "sample_weight is zero for every row: at least one weight must be positive")
        if not np.isfinite(total):
            raise ValueError("sample_weight sums past the largest float64; rescale the weights")
        if wmin == wmax:  # equal weights shift as no weights (see _driver.run_shift)
            common, integer_weights = float(wmin), True
        else:
            center = wx.astype(np.float64) / total
            count = total
    total = X.shape[0] if W is None else total
    if rest and bool(integer_weights) and bool(rest[0]):
        absmax = float(rest[1])
        if absmax * count < 2.0**53:
            return center, absmax, total, common
    return center, None, total, common


@dataclass(frozen=True)
class _Weights:
    """A fit's weights: the lazy 1-D Dask array, the futures of its chunks
    (columns of shape (rows, 1), one per chunk of X), their sum and, when
    they are all equal, their value (the shift then runs unweighted, its
    intensities scaled, as :func:`gpumeanshift._driver.run_shift` does)."""

    W: object
    futs: list
    total: float
    common: float | None

    def on_client(self, client):
        """Every row's weight, as one host array."""
        return np.concatenate([_driver.to_numpy(c).ravel()
                               for c in _gather(client, self.futs, "gathering the weights")])


def _as_weights(sample_weight, X):
    """``sample_weight`` as a float64 Dask array chunked as X's rows, or None.

    A NumPy (or CuPy) array is checked here by
    :func:`~gpumeanshift._validation.check_sample_weight`; a Dask array's
    shape and dtype are checked here and its values in the fit's first pass
    over the data (:func:`_finite_and_center`), before anything is returned.
    """
    if sample_weight is None:
        return None
    n = X.shape[0]
    if not isinstance(sample_weight, da.Array):
        w = _driver.to_numpy(check_sample_weight(sample_weight, n))  # the tasks take host weights
        return da.from_array(w, chunks=(X.chunks[0],))
    W = sample_weight
    if W.ndim != 1:
        raise ValueError(f"sample_weight must be 1-D, got shape {W.shape}")
    if math.isnan(W.shape[0]):
        raise ValueError("sample_weight has unknown chunk sizes; call "
                         "sample_weight.compute_chunk_sizes() first")
    if W.dtype == object or W.dtype.kind not in "biuf":
        raise ValueError(f"sample_weight must hold real numbers, got an array of dtype {W.dtype}")
    if W.shape[0] != n:
        raise ValueError(f"sample_weight has {W.shape[0]} values but X has {n} rows")
    W = W.astype(np.float64)
    if W.chunks[0] != X.chunks[0]:
        W = W.rechunk((X.chunks[0],))
    if is_device_array(W._meta):
        W = W.map_blocks(_driver.to_numpy, dtype=np.float64, meta=np.zeros(0))
    return W


def _rule_bandwidth(client, X, rule, W=None, total=None, center=None):
    """Scott's or Silverman's rule; with weights ``W`` (summing to ``total``,
    weighted mean ``center``) ``n`` is ``total`` and the variances are those
    of the rows repeated by their weights (ddof=1)."""
    n, d = X.shape
    if W is not None:
        n = total
    if n < 2:
        what = "sample(s)" if W is None else "total sample_weight"
        raise ValueError(f"Found array with {n} {what} while a minimum of 2 is required.")
    if W is None:
        var = X.var(axis=0, ddof=1, dtype=np.float64)
    else:
        var = da.map_blocks(_weighted_sqdev, X, W[:, None], center, dtype=np.float64,
                            chunks=((1,) * X.numblocks[0], (d,)),
                            meta=np.zeros((0, 0))).sum(axis=0) / (n - 1.0)
    return rule_from_variances(rule, n, d, _driver.to_numpy(client.compute(var, sync=True)))


def _bin_seeds(client, X, futs, bin_size, min_bin_freq, wfuts=None, total=None):
    """:func:`gpumeanshift.get_bin_seeds` over the chunks; None means "every point".

    Each chunk bins its own rows; the client merges the cells (first
    occurrence = smallest row index, counts added), so the seeds and their
    order equal the single-machine ones. With weights (``wfuts``, summing to
    ``total``) a cell's count is its summed weight and rows of weight 0
    occupy no cell, as if each row were repeated by its weight.
    """
    offsets = np.concatenate([[0], np.cumsum(X.chunks[0])[:-1]]).astype(np.int64)
    wparts = [None] * len(futs) if wfuts is None else wfuts
    parts = _gather(client, [
        client.submit(_bin_block, f, bin_size, int(o), w, pure=False)
        for f, o, w in zip(futs, offsets, wparts)
    ], "bin seeding")
    cells = np.concatenate([p[0] for p in parts])
    first = np.concatenate([p[1] for p in parts])
    counts = np.concatenate([p[2] for p in parts])
    uniq, inverse = np.unique(cells, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    first_u = np.full(len(uniq), np.iinfo(np.int64).max)
    np.minimum.at(first_u, inverse, first)
    counts_u = np.bincount(inverse, weights=counts, minlength=len(uniq))
    if wfuts is None:
        counts_u = counts_u.astype(np.int64)
    return _cells_to_seeds(uniq, first_u, counts_u, X.shape[0] if total is None else total,
                           bin_size, min_bin_freq, X.dtype, stacklevel=3)


def _basin_labels(X, point_modes, centers, threshold):
    """label_assignment="basin": each point takes the center nearest its own mode."""
    be = resolve_backend("numpy")  # on the client, where the modes are
    labels = nearest_labels(be, np.ascontiguousarray(point_modes, dtype=X.dtype),
                            np.ascontiguousarray(centers, dtype=X.dtype))
    labels = da.from_array(labels, chunks=(X.chunks[0],))
    if is_device_array(X._meta):
        labels = labels.map_blocks(_like, _label_meta(X), dtype=np.int64, meta=_label_meta(X))
    if threshold is None:
        return labels
    return da.map_blocks(_basin_outliers, X, labels[:, None], centers, threshold, drop_axis=1,
                         dtype=np.int64, meta=_label_meta(X))
