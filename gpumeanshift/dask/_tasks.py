"""What the workers run: one task's work on the chunks it holds (a shard's
whole shift, a round's partial sums, labels, bins, neighbour distances, the
sums of the data pass). Each returns host arrays (small) or its chunk's type."""

from __future__ import annotations

import time

import numpy as np

from .. import _driver
from .._labels import nearest_labels, outside_reach
from .._validation import is_device_array
from ..backends.base import PartialSums
from ._cluster import _concat_rows, _task_threads, _worker_address, _worker_backend, _xp

def _shift_task(X, seeds, *, backend, n_jobs, algorithm, bandwidth, kernel, max_iter, tol,
                max_memory=None, weights=None, seed_weights=None):
    """"seeds" strategy: the whole shift loop of one seed shard on one worker.

    ``seeds`` is an array or a list of chunks of X (every point seeds).
    ``weights``: the rows' weights (float64, one per row of X) or None.
    ``seed_weights``: with chunks of X as seeds, their weights; the rows of
    weight 0 are no seeds (they take no part in the fit).
    """
    t0 = time.perf_counter()
    if isinstance(seeds, (list, tuple)):
        seeds = _concat_rows(*seeds)
        if seed_weights is not None:
            keep = np.concatenate([_driver.to_numpy(w).ravel() for w in seed_weights]) > 0
            seeds = seeds[_xp(seeds).asarray(keep)]
    be = _worker_backend(backend, _task_threads(n_jobs), max_memory)
    xp = _xp(X)
    seeds = xp.ascontiguousarray(xp.asarray(seeds, dtype=X.dtype))
    count_type = np.int64 if weights is None else np.float64
    if seeds.shape[0] == 0:  # a shard of rows that all weigh 0
        return {"modes": np.zeros((0, X.shape[1]), dtype=X.dtype),
                "n_iter": np.zeros(0, np.int64), "intensity": np.zeros(0, count_type),
                "converged": np.zeros(0, bool), "backend": be.name, "algorithm": "brute",
                "seconds": time.perf_counter() - t0}
    if weights is not None:
        weights = _driver.to_numpy(weights).astype(np.float64, copy=False).ravel()
    # Equal weights run the unweighted arithmetic (intensities scaled), as on one machine.
    res = _driver.run_shift(be, X, seeds, weights, bandwidth=bandwidth, kernel=kernel,
                            max_iter=max_iter, tol=tol, algorithm=algorithm)
    host = _driver.to_numpy
    return {
        "modes": host(res.modes),
        "n_iter": host(res.n_iter).astype(np.int64, copy=False),
        "intensity": host(res.intensity).astype(count_type, copy=False),
        "converged": host(res.converged).astype(bool, copy=False),
        "backend": be.name,
        "algorithm": res.algorithm,
        "seconds": time.perf_counter() - t0,
    }


def _round_task(chunks, seeds, *, backend, n_jobs, bandwidth, kernel, origin, exact,
                algorithm, max_memory=None, weights=None):
    """One worker's share of a "data" round: the partial sums of its chunks.

    Each chunk's sums come from the worker's own backend
    (:meth:`~gpumeanshift.backends.base.Backend.partial_sums`: the NumPy
    backend's tiled step, or the CUDA backend's split kernel on a GPU
    worker), as host arrays. One task per worker and round (not per chunk)
    keeps the scheduler's per-task cost out of the loop; the sums stay per
    chunk so that the client adds them in chunk order, whichever worker
    computed them. ``weights``: the chunks' weights, one array per chunk, or
    None.
    """
    t0 = time.perf_counter()
    be = _worker_backend(backend, _task_threads(n_jobs), max_memory)
    if weights is None:
        weights = [None] * len(chunks)
    sums = []
    for chunk, w in zip(chunks, weights):
        if be.name == "numpy" and is_device_array(chunk):
            chunk = _driver.to_numpy(chunk)
        if w is not None:
            w = _driver.to_numpy(w).astype(np.float64, copy=False).ravel()
        p = be.partial_sums(chunk, seeds, bandwidth=bandwidth, kernel=kernel, origin=origin,
                            exact=exact, algorithm=algorithm, weights=w)
        sums.append(PartialSums(*(_driver.to_numpy(a) for a in (p.sums, p.weight, p.count))))
    return {"sums": sums, "backend": be.name, "seconds": time.perf_counter() - t0,
            "worker": _worker_address()}


def _label_block(block, centers, threshold, backend, n_jobs, max_memory=None):
    """Nearest-center labels of one chunk (-1 beyond ``threshold`` when given)."""
    xp = _xp(block)  # the labels come back in the chunk's array type
    be = _worker_backend(backend, n_jobs or 1, max_memory)
    if be.name == "numpy" and xp is not np:
        block = block.get()
    block = block if block.flags.c_contiguous else _xp(block).ascontiguousarray(block)
    if block.shape[0] == 0:
        return xp.zeros(0, dtype=np.int64)
    C = np.ascontiguousarray(centers, dtype=block.dtype)
    return xp.asarray(_driver.to_numpy(nearest_labels(be, block, C, threshold)))


def _bincount_block(labels, k, weights=None):
    """Points of a chunk per label (their summed weight with ``weights``)."""
    labels = _driver.to_numpy(labels)
    keep = labels >= 0
    if weights is None:
        return np.bincount(labels[keep], minlength=k)
    weights = _driver.to_numpy(weights).astype(np.float64, copy=False).ravel()
    return np.bincount(labels[keep], weights=weights[keep], minlength=k)


def _bin_block(block, bin_size, offset, weights=None):
    """One chunk's occupied grid cells, each with its first row and its count.

    With ``weights`` the rows of weight 0 occupy no cell and a cell's count is
    the summed weight of its rows (float64).
    """
    block = _driver.to_numpy(block)
    rows = None
    if weights is not None:
        weights = _driver.to_numpy(weights).astype(np.float64, copy=False).ravel()
        rows = np.flatnonzero(weights > 0)
        block, weights = block[rows], weights[rows]
    binned = np.round(block / bin_size) + 0.0  # -0.0 shares a cell with 0.0
    cells, first, inverse, counts = np.unique(binned, axis=0, return_index=True,
                                              return_inverse=True, return_counts=True)
    if weights is not None:
        counts = np.bincount(inverse.ravel(), weights=weights, minlength=len(cells))
        first = rows[first]
    else:
        counts = counts.astype(np.int64)
    return cells, first.astype(np.int64) + offset, counts


def _kth_block(S, start, stop, k, backend, n_jobs, weights=None):
    """Distance from rows start:stop of S to their k-th nearest row of S.

    With ``weights`` (of the rows of S), ``k`` is an amount of weight; only
    the queries of positive weight are answered, and their weights come back
    with the distances.
    """
    be = _worker_backend(backend, _task_threads(n_jobs))
    if weights is None:
        return _driver.to_numpy(be.kth_neighbor_distance(S, S[start:stop], k)).astype(np.float64)
    weights = _driver.to_numpy(weights).astype(np.float64, copy=False)
    wq = weights[start:stop]
    live = np.flatnonzero(wq > 0)
    xp = _xp(S)
    Q = xp.ascontiguousarray(S[start:stop][xp.asarray(live)])
    if not len(live):
        return np.zeros(0), np.zeros(0)
    kth = be.kth_neighbor_distance(S, Q, k, weights=xp.asarray(weights))
    return _driver.to_numpy(kth).astype(np.float64), wq[live]


def _distinct_block(block, weights=None):
    """The chunk's distinct rows and their counts (summed weights with
    ``weights``, rows of weight 0 left out)."""
    block = np.ascontiguousarray(_driver.to_numpy(block))
    if weights is not None:
        weights = _driver.to_numpy(weights).astype(np.float64, copy=False).ravel()
    return _driver.distinct_rows(block, weights)


def _basin_outliers(block, labels, centers, h):
    """-1 for the points of a block farther than h from their basin's center."""
    return outside_reach(block, labels[:, 0], centers, h)


def _weighted_colsum(block, weights):
    """sum_i w_i x_i of one chunk (float64, on the host), as a 1 x d block."""
    block = _driver.to_numpy(block).astype(np.float64, copy=False)
    w = _driver.to_numpy(weights).astype(np.float64, copy=False)
    return (w.T @ block).reshape(1, -1)


def _weighted_sqdev(block, weights, center):
    """sum_i w_i (x_i - center)^2 of one chunk, per feature, as a 1 x d block."""
    dev = _driver.to_numpy(block).astype(np.float64) - center
    w = _driver.to_numpy(weights).astype(np.float64, copy=False)
    return (w.T @ (dev * dev)).reshape(1, -1)
