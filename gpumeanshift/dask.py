"""Mean shift on a Dask cluster: many processes, many machines, many GPUs.

``import gpumeanshift`` never imports Dask; this module does, and is imported
only by ``import gpumeanshift.dask`` (install ``gpumeanshift[dask]``).

The algorithm is the single-machine one (:mod:`gpumeanshift._driver`): seeds,
shift until converged, deduplicate the modes on the client, label every
point (nearest center, or its basin). Seeds, bin seeding, bandwidth
estimates and labels are computed chunk by chunk on the workers. Only the shift loop is distributed, in one of
two ways:

``strategy="seeds"``
    The data are assembled once on one worker and copied once to each worker
    that needs them; the seeds are split into one shard per worker and each
    worker runs its own backend's whole :meth:`~gpumeanshift.Backend.shift`
    on its shard. No communication between iterations; each worker needs the
    whole data set (and the backend's working copies) in memory.
``strategy="data"``
    The data stay where their chunks are: each iteration is one task per
    worker, pinned to it, over the chunks it holds; nothing of the data is
    gathered or moved. Every chunk returns, for the active seeds, the partial
    sums ``sum w x``, ``sum w`` and the count of points within one bandwidth;
    the client adds them up (in chunk order), takes the step, applies the
    stopping rule and drops the seeds that stopped. The stopping rule, ``n_iter`` and the intensity
    are those of :class:`~gpumeanshift.backends.base.ShiftResult`. The client
    holds the seeds (a few thousand with bin seeding; every point without).
``strategy="auto"``
    "seeds" when about five times the data fits in half the memory of the
    smallest worker (the GPU's memory on GPU workers), else "data"; the
    choice is logged at INFO level and kept in ``strategy_``.

Everything the workers compute is a deterministic function of the data and
the seeds, so when a worker dies Dask recomputes what it held and the fit
gives the same result; when the lost pieces cannot be recomputed (scattered
data) the fit raises :class:`RuntimeError` instead of returning centers.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
import math
import time
import uuid
import warnings

import numpy as np

try:
    import dask.array as da
    from distributed import default_client, futures_of
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "gpumeanshift.dask needs dask[array] and distributed: "
        "pip install 'gpumeanshift[dask]'"
    ) from exc

from . import _driver
from ._estimator import _convert_output
from ._estimator import MeanShift as _LocalMeanShift
from ._progress import ShiftProgress
from ._params import validate_params
from ._validation import (check_array, check_bandwidth, check_int, check_real,
                          check_sample_weight, is_device_array)
# GAUSSIAN_GRID_RADIUS: where the single-machine algorithm="grid" truncates
# the Gaussian, in bandwidths.
from ._spatial import GAUSSIAN_GRID_RADIUS as _GAUSSIAN_GRID_RADIUS
from ._spatial import within_exact
from .backends.base import cuda_available, resolve_backend
from .bandwidth import _check_random_state
from .bandwidth import estimate_bandwidth as _local_estimate_bandwidth
from .seeding import _cells_to_seeds

__all__ = ["MeanShift", "estimate_bandwidth", "STRATEGIES"]

STRATEGIES = ("auto", "seeds", "data")

logger = logging.getLogger("gpumeanshift")

# "seeds" needs the whole data set on each worker: the NumPy backend keeps a
# centred copy and a sorted copy with a column of ones (about 3.5x the data)
# besides the worker's own share of the chunks.
_SEEDS_MEMORY_FACTOR = 5.0
_SEEDS_MEMORY_FRACTION = 0.5
# Elements of one seed-block x data-block matrix in a partial-sum task.
_TILE_ELEMENTS = 2**19
_BYTES_PER_ELEMENT = 32  # about 4 live float64 blocks per seed x point element
# Squared distance (in bandwidths) past which exp(-d2/2) is exactly 0.0.
_GAUSS_D2_CUTOFF = {np.dtype(np.float64): 2.0 * 746.0, np.dtype(np.float32): 2.0 * 104.0}
# Failures that mean "a worker and what it held are gone for good".
_LOST = (KilledWorker, FutureCancelledError)


# ------------------------------------------------------------ worker-side helpers
def _xp(a):
    """The array module of ``a`` (CuPy for device arrays, else NumPy)."""
    if is_device_array(a):
        import cupy

        return cupy
    return np


def _worker_backend(backend, n_threads, max_memory=None):
    """Resolve ``backend`` on the worker running this task.

    "auto" is decided where the task runs (a GPU worker gets the CUDA
    backend). ``n_threads`` only goes to the NumPy backend; ``max_memory``
    (bytes of scratch memory per call) to either.
    """
    if not isinstance(backend, str):
        return backend
    name = backend
    if backend == "auto":
        name = "cupy" if cuda_available() else "numpy"
    options = {"n_threads": n_threads} if name == "numpy" and n_threads else {}
    if max_memory is not None:
        options["max_memory"] = max_memory
    return resolve_backend(name, **options)


def _task_threads(n_jobs):
    """Threads for one backend call: n_jobs, else the worker's thread count."""
    if n_jobs is not None and n_jobs > 0:
        return n_jobs
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except (ValueError, AttributeError):  # not on a worker (synchronous scheduler)
        return None


def _concat_rows(*chunks):
    """The rows of the chunks, in order, as one C-contiguous array."""
    xp = _xp(chunks[0])
    out = chunks[0] if len(chunks) == 1 else xp.concatenate(chunks)
    return xp.ascontiguousarray(out)


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
    kwargs = {}
    if "algorithm" in inspect.signature(be.shift).parameters:
        kwargs["algorithm"] = algorithm
    elif algorithm == "grid":
        raise ValueError(f"the {be.name!r} backend has no algorithm='grid'")
    if weights is not None:
        weights = _driver.to_numpy(weights).astype(np.float64, copy=False).ravel()
    # Equal weights run the unweighted arithmetic (intensities scaled), as on one machine.
    res = _driver.run_shift(be, X, seeds, weights, bandwidth=bandwidth, kernel=kernel,
                            max_iter=max_iter, tol=tol, **kwargs)
    host = _driver.to_numpy
    return {
        "modes": host(res.modes),
        "n_iter": host(res.n_iter).astype(np.int64, copy=False),
        "intensity": host(res.intensity).astype(count_type, copy=False),
        "converged": host(res.converged).astype(bool, copy=False),
        "backend": be.name,
        "algorithm": getattr(res, "algorithm", "brute"),
        "seconds": time.perf_counter() - t0,
    }


def _partial_sums(chunk, seeds, center, inv_h, kernel, truncate=None, max_memory=None,
                  exact=None, weights=None):
    """"data" strategy: one chunk's contribution to one shift step.

    ``seeds`` are positions in bandwidth units relative to ``center`` (the
    coordinates the NumPy backend iterates in). Returns, per seed, the sums
    over this chunk's points of ``w * y`` and ``w`` (as ``acc[:, :d]`` and
    ``acc[:, d]``) and the number of points within one bandwidth, as host
    arrays. Array-module agnostic: NumPy or CuPy chunks.

    As in the NumPy backend, seeds go in spatially compact blocks and each
    block visits only the points inside its bounding box widened by the
    kernel's reach (1 for "flat"; for "gaussian" the distance past which
    ``exp`` is exactly 0), so the culling never changes a sum. ``truncate``
    (in bandwidths) drops the Gaussian weights of farther points, as the
    single-machine ``algorithm="grid"`` does. ``max_memory`` bounds the
    seed x point blocks (about 4 live values of 8 bytes per element) as the
    NumPy backend's does; the chunk's own copies come on top.

    ``exact = (radius, bound)`` (integer-valued float64 data, flat kernel;
    ``bound`` >= every |coordinate| of the data and the seeds): the chunk and
    the seeds stay in the data's own units (``center`` and ``inv_h`` unused)
    and a point is within when ``sum_j (y_j - q_j)^2 <= radius^2``, summed in
    feature order for the pairs within rounding of the boundary, as the NumPy
    backend and scikit-learn decide it; the sums of integer rows are exact.

    ``weights`` (float64, one per row of the chunk, or None for ones): each
    point's kernel value is multiplied by its weight, and the count becomes
    the summed weight of the points within one bandwidth (float64).
    """
    xp = _xp(chunk)
    dtype = chunk.dtype
    radius = None if exact is None else float(exact[0])
    if radius is None:
        Y = (chunk - xp.asarray(center, dtype=np.float64).astype(dtype)) * dtype.type(inv_h)
        Y = Y.astype(dtype, copy=False)
        r2 = 1.0
    else:
        Y = chunk
        r2 = radius * radius
    n, d = Y.shape
    S = xp.asarray(seeds, dtype=dtype)
    m = S.shape[0]
    acc = xp.zeros((m, d + 1), dtype=dtype)
    cnt = xp.zeros(m, dtype=np.int64 if weights is None else np.float64)
    if weights is not None:
        w64 = xp.asarray(weights, dtype=np.float64).ravel()
        # Rows of weight 0 add nothing anywhere: leave them out of the blocks.
        live = w64 > 0
        if not bool(live.all()):
            Y, chunk, w64 = Y[live], chunk[live], w64[live]
            n = Y.shape[0]
        wdt = w64.astype(dtype)
    if not (n and m):
        return _driver.to_numpy(acc), _driver.to_numpy(cnt)
    reach = 1.0 if kernel == "flat" else math.sqrt(_GAUSS_D2_CUTOFF[np.dtype(dtype)])
    if truncate is not None and kernel != "flat":
        reach = min(reach, float(truncate))
    eps = float(np.finfo(dtype).eps)
    if radius is not None:
        # A point at exactly the radius may land a rounding error past it in
        # the box test: reach a hair further (each pair is decided below).
        reach = radius + 64 * eps * (radius + float(exact[1]))
    cull_dims = min(d, 8)
    tile_elements = _TILE_ELEMENTS if max_memory is None else max(1, min(
        _TILE_ELEMENTS, int(max_memory) // _BYTES_PER_ELEMENT))
    Y1 = xp.concatenate([Y, xp.ones((n, 1), dtype=dtype)], axis=1)
    order = xp.argsort(S[:, 0])
    s_step = 64
    for s0 in range(0, m, s_step):
        rows = order[s0:s0 + s_step]
        q = S[rows]
        t = q.shape[0]
        lo = q.min(axis=0)
        hi = q.max(axis=0)
        near = xp.all((Y[:, :cull_dims] >= lo[:cull_dims] - reach)
                      & (Y[:, :cull_dims] <= hi[:cull_dims] + reach), axis=1)
        cand = Y1[near]
        if cand.shape[0] == 0:
            continue
        if weights is not None:
            cand_w, cand_w64 = wdt[near], w64[near]
        # Distances by expansion relative to the block's centre, which keeps
        # |q|^2 + |y|^2 - 2 q.y accurate (as the NumPy backend does).
        mid = ((lo + hi) * 0.5).astype(dtype)
        qc = q - mid
        qa = xp.empty((t, d + 2), dtype=dtype)
        qa[:, :d] = qc
        qa[:, d] = (qc * qc).sum(axis=1)
        qa[:, d + 1] = 1.0
        a_blk = xp.zeros((t, d + 1), dtype=dtype)
        c_blk = xp.zeros(t, dtype=cnt.dtype)
        x_step = max(1, tile_elements // t)
        if radius is not None:
            q2max = float(qa[:, d].max())  # the block's largest |q - mid|^2
        for x0 in range(0, cand.shape[0], x_step):
            part = cand[x0:x0 + x_step]
            xa = xp.empty((part.shape[0], d + 2), dtype=dtype)
            xa[:, :d] = part[:, :d] - mid
            xa[:, d + 1] = (xa[:, :d] * xa[:, :d]).sum(axis=1)
            xa[:, :d] *= -2.0
            xa[:, d] = 1.0
            d2 = qa @ xa.T
            inside = d2 <= r2
            if radius is not None:
                # Rounding of the expansion: a few ulps of its terms.
                slack = 64 * (d + 2) * eps * (r2 + q2max + float(xa[:, d + 1].max()))
                rows_b, cols_b = xp.nonzero(xp.abs(d2 - r2) <= slack)
                if rows_b.size:
                    inside[rows_b, cols_b] = within_exact(part[cols_b, :d], q[rows_b],
                                                          radius, xp)
            if weights is None:
                c_blk += xp.count_nonzero(inside, axis=1)
            else:
                c_blk += xp.dot(inside.astype(np.float64), cand_w64[x0:x0 + x_step])
            if kernel == "flat":
                w = inside.astype(dtype)
            else:  # in place: this is the loop's biggest array
                far = d2 > reach * reach if truncate is not None else None
                d2 *= -0.5
                xp.minimum(d2, 0.0, out=d2)
                w = xp.exp(d2, out=d2)
                if far is not None:
                    w[far] = 0.0
            if weights is not None:
                w *= cand_w[x0:x0 + x_step]
            # xp.dot, not @: NumPy's matmul keeps the GIL for outputs under
            # 500 elements (few seeds), stalling the worker's other threads.
            a_blk += xp.dot(w, part)
        acc[rows] = a_blk
        cnt[rows] = c_blk
    return _driver.to_numpy(acc), _driver.to_numpy(cnt)


def _round_task(chunks, seeds, center, inv_h, kernel, truncate, max_memory=None, exact=None,
                weights=None):
    """One worker's share of a "data" round: the partial sums of its chunks.

    One task per worker and round (not per chunk) keeps the scheduler's
    per-task cost out of the loop; the sums stay per chunk so that the client
    adds them in chunk order, whichever worker computed them. ``weights``:
    the chunks' weights, one array per chunk, or None.
    """
    t0 = time.perf_counter()
    if weights is None:
        weights = [None] * len(chunks)
    sums = [_partial_sums(c, seeds, center, inv_h, kernel, truncate, max_memory, exact, w)
            for c, w in zip(chunks, weights)]
    return {"sums": sums, "xp": _xp(chunks[0]).__name__.split(".")[0],
            "seconds": time.perf_counter() - t0, "worker": _worker_address()}


def _worker_address():
    try:
        from distributed import get_worker

        return get_worker().address
    except ValueError:  # not on a worker
        return None


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
    labels, dist = be.nearest(block, C)
    labels = xp.asarray(_driver.to_numpy(labels).astype(np.int64, copy=False))
    if threshold is not None:
        labels = xp.where(xp.asarray(_driver.to_numpy(dist)) <= threshold, labels, -1)
    return labels


def _label_meta(X):
    """An empty 1-D int64 array of X's array type (the meta of label arrays)."""
    return X._meta.reshape(-1)[:0].astype(np.int64)


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


def _worker_capacity(dask_worker, backend):
    """Bytes the fit may count on in this worker: host memory, or GPU memory."""
    limit = getattr(dask_worker.memory_manager, "memory_limit", None)
    if not limit:
        import psutil

        limit = psutil.virtual_memory().total
    if isinstance(backend, str) and (backend == "cupy" or (backend == "auto" and cuda_available())):
        try:
            import cupy

            limit = min(limit, cupy.cuda.Device().mem_info[1])
        except Exception:  # no usable device after all: host memory it is
            pass
    return int(limit)


# ---------------------------------------------------------------- client helpers
def _get_client(client):
    if client is not None:
        return client
    try:
        return default_client()
    except ValueError as exc:
        raise ValueError(
            "gpumeanshift.dask needs a dask.distributed Client: create one "
            "(for example Client(LocalCluster())) or pass client=..."
        ) from exc


def _as_dask_array(X, name="X"):
    """A 2-D Dask array of float32/float64, chunked along rows only."""
    if not isinstance(X, da.Array):
        X = da.from_array(check_array(X, name=name))
    if X.ndim != 2:
        raise ValueError(f"Expected a 2-D array for {name}, got {X.ndim}-D with shape {X.shape}")
    if any(math.isnan(s) for s in X.shape):
        raise ValueError(f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes() first")
    if X.shape[1] < 1:
        raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
    if X.shape[0] < 1:
        raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required.")
    kind = X.dtype.kind
    if kind == "c":
        raise ValueError(f"Complex data not supported: {name} has dtype {X.dtype}")
    if kind not in "biuf":
        raise ValueError(f"{name} has unsupported dtype {X.dtype}; expected real numbers")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    return X


def _chunk_futures(client, X):
    """Persist X on the cluster; its chunk futures in row order."""
    X = client.persist(X)
    futs = {f.key: f for f in futures_of(X)}
    keys = [row[0] for row in X.__dask_keys__()]
    return X, [futs[k] for k in keys]


def _gather(client, futures, what):
    """Gather, turning "the data are gone for good" into a clear error."""
    try:
        return client.gather(futures)
    except _LOST as exc:
        raise RuntimeError(
            f"distributed mean shift failed during {what}: a worker was lost and what it "
            f"held could not be recomputed ({type(exc).__name__}: {exc}). No result was "
            "returned; persist the input from a recomputable graph (not scattered data) "
            "or retry."
        ) from exc


def _workers(client):
    workers = sorted(client.scheduler_info()["workers"])
    if not workers:
        raise RuntimeError("the Dask cluster has no workers")
    return workers


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


def _weighted_colsum(block, weights):
    """sum_i w_i x_i of one chunk (float64, on the host), as a 1 x d block."""
    block = _driver.to_numpy(block).astype(np.float64, copy=False)
    w = _driver.to_numpy(weights).astype(np.float64, copy=False)
    return (w.T @ block).reshape(1, -1)


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
        w = check_sample_weight(sample_weight, n)
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


def _weighted_sqdev(block, weights, center):
    """sum_i w_i (x_i - center)^2 of one chunk, per feature, as a 1 x d block."""
    dev = _driver.to_numpy(block).astype(np.float64) - center
    w = _driver.to_numpy(weights).astype(np.float64, copy=False)
    return (w.T @ (dev * dev)).reshape(1, -1)


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
    if rule == "scott":
        factor = n ** (-1.0 / (d + 4))
    else:
        factor = (n * (d + 2) / 4.0) ** (-1.0 / (d + 4))
    if W is None:
        var = X.var(axis=0, ddof=1, dtype=np.float64)
    else:
        var = da.map_blocks(_weighted_sqdev, X, W[:, None], center, dtype=np.float64,
                            chunks=((1,) * X.numblocks[0], (d,)),
                            meta=np.zeros((0, 0))).sum(axis=0) / (n - 1.0)
    var = _driver.to_numpy(client.compute(var, sync=True))
    sigma = float(np.sqrt(np.mean(var)))
    if sigma == 0:
        raise ValueError(f"every feature of X is constant; the {rule} rule gives bandwidth 0")
    return float(factor * sigma)


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


# ------------------------------------------------------------------ public API
def estimate_bandwidth(X, *, quantile=0.3, n_samples=None, random_state=0, backend="numpy",
                       n_jobs=None, client=None, sample_weight=None):
    """Estimate the bandwidth of a Dask array, as :func:`gpumeanshift.estimate_bandwidth`.

    The same definition and the same subsample (the rows
    ``RandomState(random_state).permutation(n)[:n_samples]``): the mean over
    the sample of the distance to its k-th nearest neighbour within the
    sample, ``k = max(1, int(len(sample) * quantile))``. The sample is
    assembled on one worker and copied once to the others; each worker
    computes the distances of a share of the queries with its backend. The
    cost is O(len(sample)^2): give ``n_samples`` for large data.

    Parameters
    ----------
    X : dask array or array-like of shape (n_samples, n_features)
        Input points; anything but a Dask array goes to the single-machine
        :func:`gpumeanshift.estimate_bandwidth`.
    quantile : float, default=0.3
        Between 0 and 1.
    n_samples : int, default=None
        Size of the subsample; None uses every point.
    random_state : int, RandomState instance or None, default=0
        Which points are sampled when ``n_samples`` is given.
    backend : str or Backend, default="numpy"
        Backend of the workers ("auto": each worker's GPU when it has one).
    n_jobs : int, default=None
        Threads of the NumPy backend per task; None uses the worker's threads.
    client : distributed.Client, default=None
        The cluster; None uses the default client.
    sample_weight : array-like or dask array of shape (n_samples,), default=None
        Weights of the rows (a row of weight w counts as w copies of
        itself): the mean is weighted and k is an amount of weight, as in
        :func:`gpumeanshift.estimate_bandwidth`. The subsample keeps the
        weights of its rows.

    Returns
    -------
    bandwidth : numpy.float64

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> from distributed import Client
    >>> from gpumeanshift.dask import estimate_bandwidth
    >>> client = Client(processes=False, n_workers=1, dashboard_address=":0")
    >>> X = np.array([[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]])
    >>> round(float(estimate_bandwidth(da.from_array(X, chunks=3), quantile=0.5)), 4)
    1.6191
    >>> client.close()
    """
    if not isinstance(X, da.Array) and not isinstance(sample_weight, da.Array):
        kwargs = {} if sample_weight is None else {"sample_weight": sample_weight}
        return _local_estimate_bandwidth(X, quantile=quantile, n_samples=n_samples,
                                         random_state=random_state, backend=backend, **kwargs)
    quantile = check_real(quantile, "quantile", low=0.0)
    if quantile > 1:
        raise ValueError(f"quantile must be in [0, 1], got {quantile}")
    n_samples = check_int(n_samples, "n_samples", low=1, allow_none=True)
    client = _get_client(client)
    X = _as_dask_array(X)
    W = _as_weights(sample_weight, X)
    if W is not None:
        _finite_and_center(client, X, W)  # the weights' checks
    if n_samples is not None:
        rng = _check_random_state(random_state)
        rows = rng.permutation(X.shape[0])[:n_samples]
        X = X[rows]
        if W is not None:
            W = W[rows].rechunk((X.chunks[0],))
    X = X.astype(np.float64)
    X, futs = _chunk_futures(client, X)
    S = client.submit(_concat_rows, *futs, pure=False)
    m = X.shape[0]
    if W is None:
        k = max(1, int(m * quantile))
        Wfull = None
    else:
        W, wfuts = _chunk_futures(client, W[:, None])
        Wfull = client.submit(_concat_weights, *wfuts, pure=False)
        w = client.gather(Wfull)  # one float per sampled row
        wsum = math.fsum(w)
        if not wsum > 0:
            raise ValueError("estimate_bandwidth: the sampled rows all have weight 0; "
                             "pass n_samples=None or a larger n_samples")
        k = _weighted_k(w, wsum, quantile)
    nw = len(_workers(client))
    bounds = np.linspace(0, m, min(m, nw) + 1).astype(np.int64)
    workers = _workers(client)
    parts = _gather(client, [
        client.submit(_kth_block, S, int(a), int(b), k, backend, n_jobs, Wfull, pure=False,
                      workers=[workers[i % nw]], allow_other_workers=True)
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])) if b > a
    ], "bandwidth estimation")
    if W is None:
        kth = np.concatenate(parts)
        total = 0.0
        for start in range(0, len(kth), 500):  # scikit-learn's batches, its order
            total += kth[start:start + 500].sum()
        return np.float64(total / m)
    kth = np.concatenate([p[0] for p in parts])
    wq = np.concatenate([p[1] for p in parts])
    if not np.isfinite(kth).all():
        raise ValueError(
            "estimate_bandwidth: the distances between points exceed float64's range; "
            "no finite bandwidth can be estimated. Rescale the data or pass a bandwidth.")
    return np.float64(math.fsum(kth * wq) / wsum)


def _weighted_k(w, total, quantile):
    """The k (an amount of weight) of a weighted bandwidth estimate, as
    :func:`gpumeanshift.estimate_bandwidth` takes it: that of the repeated
    rows, ``max(1, int(total * quantile))``, for integer weights; else
    ``total * quantile``, at least the smallest positive weight."""
    if np.array_equal(w, np.round(w)):
        return float(max(1, int(total * quantile)))
    return max(total * quantile, float(w[w > 0].min()))


def _concat_weights(*chunks):
    """The weight chunks (columns of shape (rows, 1)) as one float64 vector."""
    return np.ascontiguousarray(np.concatenate(
        [_driver.to_numpy(c).ravel() for c in chunks]).astype(np.float64, copy=False))


class MeanShift(_LocalMeanShift):
    """Mean-shift clustering of a Dask array on a Dask cluster.

    The parameters and fitted attributes of :class:`gpumeanshift.MeanShift`,
    and the same result: same centers (to rounding), labels and ``n_iter_``.
    Each worker uses its own backend (``backend="auto"``: the GPU of a
    ``dask_cuda.LocalCUDACluster`` worker, else NumPy); chunks may be NumPy
    or CuPy arrays.

    Parameters
    ----------
    bandwidth, kernel, seeds, bin_seeding, min_bin_freq, cluster_all, max_iter, tol, backend, n_jobs, max_memory, output_type, algorithm, label_assignment, verbose
        As for :class:`gpumeanshift.MeanShift`. ``max_memory`` bounds the
        scratch memory of each task on its worker (the backend's blocks; for
        ``strategy="data"`` the seed x point blocks of every chunk).
        ``verbose`` logs on the client: the fit's start, every round of the
        "data" loop (the "seeds" shards report once, when done) and its end,
        with a tqdm bar after 2 seconds as on one machine. ``bandwidth=None`` estimates
        it from every point (O(n^2), the data copied to every worker); pass a
        number, a rule, or a value from :func:`estimate_bandwidth` with
        ``n_samples`` for large data. ``n_jobs`` is the NumPy backend's
        threads per task (None: the worker's thread count). With
        ``strategy="data"``, ``algorithm`` "auto" and "brute" are the exact
        bounding-box culling and "grid" truncates the Gaussian as the
        single-machine grid does. ``label_assignment="basin"`` climbs every
        point (the client then holds one mode per point).
    strategy : {"auto", "seeds", "data"}, default="auto"
        How the shift loop is distributed (see the module documentation):
        "seeds" copies the data to every worker and shards the seeds; "data"
        keeps the data sharded and reduces per-seed partial sums on the client
        every iteration; "auto" picks "seeds" when the data fit comfortably in
        the smallest worker's memory.
    client : distributed.Client, default=None
        The cluster; None uses the default client.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        Coordinates of cluster centers, strongest first.
    labels_ : dask array of shape (n_samples,)
        Cluster index of each point, persisted on the cluster, chunked as X.
    n_iter_ : int
        Largest number of iterations any seed performed.
    n_features_in_ : int
        Number of features seen during fit.
    bandwidth_ : float
        The bandwidth actually used.
    backend_ : str
        Backend(s) the workers used for the shift ("numpy", "cupy", or both
        joined by "+").
    algorithm_ : str
        The neighbourhood search that ran ("brute" or "grid"; both joined by
        "+" when the seed shards differed).
    strategy_ : str
        "seeds" or "data": the strategy the fit used.
    cluster_sizes_ : ndarray of shape (n_clusters,)
        Number of points labelled with each cluster.
    center_intensity_ : ndarray of shape (n_clusters,)
        Points within one bandwidth of each center's last shift step.

    See Also
    --------
    gpumeanshift.MeanShift : The single-machine estimator.
    estimate_bandwidth : Bandwidth estimate of a Dask array.

    Notes
    -----
    distributed starts CPU workers with ``MALLOC_TRIM_THRESHOLD_=65536``,
    which makes the NumPy backend's temporaries page-fault on every use
    (measured 2-7x slower); set
    ``distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_`` to None
    in the Dask configuration before the cluster starts.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> from distributed import Client
    >>> from gpumeanshift.dask import MeanShift
    >>> client = Client(processes=False, n_workers=2, threads_per_worker=1,
    ...                 dashboard_address=":0")
    >>> X = da.from_array(np.array([[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]]),
    ...                   chunks=3)
    >>> ms = MeanShift(bandwidth=2, kernel="flat", backend="numpy", strategy="data").fit(X)
    >>> ms.labels_.compute()
    array([1, 1, 1, 0, 0, 0])
    >>> ms.cluster_centers_
    array([[3.33333333, 6.        ],
           [1.33333333, 0.66666667]])
    >>> ms.predict(da.from_array(np.array([[0, 0], [5, 5]]))).compute()
    array([1, 0])
    >>> client.close()
    """

    def __init__(
        self,
        *,
        bandwidth=None,
        kernel="flat",
        seeds=None,
        bin_seeding=False,
        min_bin_freq=1,
        cluster_all=True,
        max_iter=300,
        tol=1e-3,
        backend="auto",
        n_jobs=None,
        max_memory=None,
        output_type="input",
        algorithm="auto",
        label_assignment="nearest",
        verbose=0,
        strategy="auto",
        client=None,
    ):
        super().__init__(
            bandwidth=bandwidth, kernel=kernel, seeds=seeds, bin_seeding=bin_seeding,
            min_bin_freq=min_bin_freq, cluster_all=cluster_all, max_iter=max_iter, tol=tol,
            backend=backend, n_jobs=n_jobs, max_memory=max_memory, output_type=output_type,
            verbose=verbose,
        )
        self.algorithm = algorithm
        self.label_assignment = label_assignment
        self.strategy = strategy
        self.client = client

    def __getstate__(self):
        state = super().__getstate__()
        state["client"] = None  # a Client does not travel; the default one is used
        return state

    # ------------------------------------------------------------- fitting
    def fit(self, X, y=None, sample_weight=None):
        """Cluster a Dask array on the cluster.

        Parameters
        ----------
        X : dask array of shape (n_samples, n_features)
            Samples (NumPy or CuPy chunks); other array-likes are wrapped
            with :func:`dask.array.from_array`.
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like or dask array of shape (n_samples,), default=None
            Weight of each row: a row of weight w counts as w copies of
            itself (integer weights give the fit of ``np.repeat(X, w,
            axis=0)``; scaling every weight by one factor changes nothing
            but ``min_bin_freq``'s meaning, which compares summed weights).
            A row of weight 0 takes no part in the fit and is no seed, but
            is labelled. Weights must be finite, >= 0 and not all 0
            (ValueError otherwise; the values of a Dask array are checked in
            the fit's first pass over the data). A Dask array is rechunked
            to X's rows. Intensities become summed weights (float64).

        Returns
        -------
        self : MeanShift
            The fitted estimator.

        Examples
        --------
        >>> import numpy as np, dask.array as da
        >>> from distributed import Client
        >>> from gpumeanshift.dask import MeanShift
        >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
        ...                 dashboard_address=":0")
        >>> X = da.from_array(np.array([[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]]),
        ...                   chunks=3)
        >>> ms = MeanShift(bandwidth=2, kernel="flat", backend="numpy").fit(X)
        >>> ms.strategy_, ms.cluster_sizes_, ms.n_iter_
        ('seeds', array([3, 3]), 2)
        >>> ms.labels_.compute()
        array([1, 1, 1, 0, 0, 0])
        >>> client.close()
        """
        t0 = time.perf_counter()
        params = self._check_params()
        client = _get_client(self.client)
        X = _as_dask_array(X)
        W = _as_weights(sample_weight, X)
        device_input = is_device_array(X._meta)
        X, futs = _chunk_futures(client, X)
        weights = None
        if W is not None:
            W2, wfuts = _chunk_futures(client, W[:, None])
            W = W2[:, 0]
        center, int_bound, total, common = _finite_and_center(client, X, W)
        if W is not None:
            weights = _Weights(W, wfuts, total, common)
        # Integer data, flat kernel: the "data" loop decides boundary ties
        # exactly, in the data's own units, as the single-machine fit does.
        lattice = int_bound if self.kernel == "flat" else None
        h = self._resolve_bandwidth(client, X, weights, center)

        seeds = self._initial_seeds(client, X, futs, h, params["min_bin_freq"], weights)
        strategy = self._choose_strategy(client, X, seeds)
        fit_id = uuid.uuid4().hex[:8]
        shift_args = dict(bandwidth=h, kernel=self.kernel, max_iter=params["max_iter"],
                          tol=params["tol"])
        t_shift = time.perf_counter()
        n_seeds = X.shape[0] if seeds is None else len(seeds)
        progress = None
        if params["verbose"]:
            logger.info("dask fit: %d points x %d features in %d chunks, %d seeds, "
                        "bandwidth=%g, kernel=%r, strategy=%r, %d workers", X.shape[0],
                        X.shape[1], len(futs), n_seeds, h, self.kernel, strategy,
                        len(_workers(client)))
            progress = ShiftProgress(n_seeds, params["max_iter"])
        # Basin labels with weights: the rows of weight 0 climb too (they are
        # labelled by their modes) but their climbs are no seeds.
        every_row = (seeds is None and h > 0 and weights is not None
                     and self.label_assignment == "basin")
        try:
            if h == 0:
                shifted = self._shift_zero_bandwidth(client, futs, seeds, weights)
            else:
                shifted = self._shift(client, X, futs, seeds, center, fit_id, shift_args,
                                      strategy, progress, lattice=lattice, weights=weights,
                                      all_rows=every_row)
        finally:
            if progress is not None:
                progress.close()
        all_modes = shifted["modes"]
        if every_row:
            live = weights.on_client(client) > 0
            for key in ("modes", "n_iter", "intensity", "converged"):
                shifted[key] = shifted[key][live]
        stats = shifted["stats"]
        stats["shift_seconds"] = time.perf_counter() - t_shift
        # What a round costs beyond its slowest task: submission, scheduling,
        # transfers of seeds and sums, gathering and the client's arithmetic.
        stats["overhead_per_round"] = (
            stats["shift_seconds"] - sum(stats["task_seconds"])) / max(1, stats["rounds"])
        modes, n_iter = shifted["modes"], shifted["n_iter"]

        centers, center_intensity, n_unconverged = _driver.finish(
            modes, n_iter, shifted["intensity"], shifted["converged"], h,
            params["max_iter"], params["tol"], stacklevel=3)
        centers = centers.astype(X.dtype, copy=False)

        if self.label_assignment == "basin":
            if seeds is None and h > 0 and (weights is None or every_row):
                point_modes = all_modes  # every point was a seed: its climb is done
            elif h == 0:  # every point stays where it is
                point_modes = X
            else:
                point_modes = self._shift(client, X, futs, None, center, f"{fit_id}-basin",
                                          shift_args, strategy, lattice=lattice,
                                          weights=weights, all_rows=True)["modes"]
            labels = _basin_labels(X, point_modes, centers, None if self.cluster_all else h)
        else:
            threshold = None if self.cluster_all else h
            labels = X.map_blocks(_label_block, centers, threshold, self.backend, self.n_jobs,
                                  self.max_memory,
                                  drop_axis=1, dtype=np.int64, meta=_label_meta(X))
        labels = client.persist(labels)
        by_key = {f.key: f for f in futures_of(labels)}
        label_futs = [by_key[k] for k in labels.__dask_keys__()]  # chunk order, as the weights
        wparts = [None] * len(label_futs) if weights is None else weights.futs
        sizes = _gather(client, [client.submit(_bincount_block, f, len(centers), w, pure=False)
                                 for f, w in zip(label_futs, wparts)], "labelling")
        size_type = np.int64 if weights is None else np.float64
        sizes = np.sum(sizes, axis=0).astype(size_type) if sizes else np.zeros(len(centers),
                                                                                size_type)

        out = lambda a: _convert_output(a, self.output_type, device_input)  # noqa: E731
        self._device_input = device_input
        self.cluster_centers_ = out(centers)
        self.labels_ = labels
        self.n_iter_ = int(n_iter.max()) if n_iter.size else 0
        self.n_features_in_ = int(X.shape[1])
        self.bandwidth_ = h
        self.backend_ = "+".join(sorted(shifted["backends"]))
        self.algorithm_ = "+".join(sorted(shifted["algorithms"]))
        self.strategy_ = strategy
        self.cluster_sizes_ = out(sizes)
        self.center_intensity_ = out(center_intensity)
        self._centers_host = centers
        stats["seconds"] = time.perf_counter() - t0
        stats["n_unconverged"] = n_unconverged
        self._fit_stats = stats
        if params["verbose"]:
            logger.info("dask fit: %d clusters from %d seeds (%d not converged) in %d "
                        "iterations, %.3f s (strategy %r, backend %r)", len(centers), len(modes),
                        n_unconverged, self.n_iter_, stats["seconds"], strategy, self.backend_)
        logger.debug("dask fit: n=%d d=%d seeds=%d centers=%d n_iter=%d strategy=%s %.3fs",
                     X.shape[0], X.shape[1], len(modes), len(centers), self.n_iter_,
                     strategy, stats["seconds"])
        return self

    def _check_params(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        params = self.get_params()
        del params["strategy"], params["client"]
        checked = validate_params(params)
        max_memory = checked["max_memory"]
        if max_memory is not None and max_memory < 1024 * _BYTES_PER_ELEMENT:
            raise ValueError(
                f"max_memory={max_memory} bytes is too small: a task needs at least "
                f"{1024 * _BYTES_PER_ELEMENT} bytes (a 1024-element block)")
        if max_memory is not None and not isinstance(self.backend, str):
            raise ValueError(
                "max_memory applies to a backend given by name ('auto', 'numpy', 'cupy'); "
                "configure a backend object itself")
        return checked

    def _resolve_bandwidth(self, client, X, weights=None, center=None):
        bw = self.bandwidth
        W = None if weights is None else weights.W
        if bw is None:
            h = float(estimate_bandwidth(X, backend=self.backend, n_jobs=self.n_jobs,
                                         client=client, sample_weight=W))
            return _driver.gaussian_from_flat(h, X.shape[1]) if self.kernel == "gaussian" else h
        if isinstance(bw, str):
            if weights is None:
                return _rule_bandwidth(client, X, bw)
            return _rule_bandwidth(client, X, bw, W, weights.total, center)
        return check_bandwidth(bw)

    def _shift_zero_bandwidth(self, client, futs, seeds, weights=None):
        """The shift with bandwidth 0: see :func:`gpumeanshift._driver.zero_bandwidth_shift`.

        With weights, the distinct rows of positive weight and their summed weights."""
        wparts = [None] * len(futs) if weights is None else weights.futs
        parts = _gather(client, [client.submit(_distinct_block, f, w, pure=False)
                                 for f, w in zip(futs, wparts)], "counting distinct points")
        rows = np.concatenate([r for r, _ in parts])
        uniq, inverse = np.unique(rows, axis=0, return_inverse=True)
        counts = np.bincount(inverse.ravel(), weights=np.concatenate([c for _, c in parts]),
                             minlength=len(uniq))
        # Every point seeding is each distinct point seeding (equal modes merge).
        # The driver's counts are integers: it is given each row's number
        # (1-based), and the summed weights are looked up by it.
        r = _driver.zero_bandwidth_shift(uniq, np.arange(1, len(uniq) + 1, dtype=np.int64),
                                         uniq if seeds is None else seeds)
        which = np.asarray(r.intensity, dtype=np.int64)
        intensity = np.where(which > 0, counts[np.maximum(which - 1, 0)], 0)
        intensity = intensity.astype(np.int64 if weights is None else np.float64)
        res = {"modes": r.modes, "n_iter": r.n_iter, "intensity": intensity,
               "converged": r.converged}
        res.update(backends={"numpy"}, algorithms={"brute"},
                   stats={"strategy": "none", "rounds": 0, "task_seconds": []})
        return res

    def _initial_seeds(self, client, X, futs, h, min_bin_freq, weights=None):
        """Seeds as a host array, or None for "every point" (left on the workers;
        with weights, every point of positive weight)."""
        if self.seeds is not None:
            seeds = self.seeds
            if isinstance(seeds, da.Array):
                seeds = client.compute(seeds, sync=True)
            seeds = check_array(seeds, name="seeds")
            if seeds.shape[1] != X.shape[1]:
                raise ValueError(f"seeds has {seeds.shape[1]} features but X has {X.shape[1]}")
            return np.ascontiguousarray(seeds, dtype=X.dtype)
        if self.bin_seeding and h > 0:  # bins of size 0 are the points themselves
            if weights is None:
                return _bin_seeds(client, X, futs, h, min_bin_freq)
            return _bin_seeds(client, X, futs, h, min_bin_freq, weights.futs, weights.total)
        return None

    def _choose_strategy(self, client, X, seeds):
        if self.strategy != "auto":
            return self.strategy
        capacity = min(client.run(_worker_capacity, backend=self.backend).values())
        need = _SEEDS_MEMORY_FACTOR * X.nbytes
        choice = "seeds" if need <= _SEEDS_MEMORY_FRACTION * capacity else "data"
        logger.info(
            "strategy='auto' chose %r: %.3g GB of data (x%.0f working copies) against "
            "%.3g GB in the smallest worker", choice, X.nbytes / 1e9, _SEEDS_MEMORY_FACTOR,
            capacity / 1e9,
        )
        if choice == "data" and seeds is None:
            warnings.warn(
                "strategy='auto' chose 'data' (the data do not fit in one worker) but every "
                f"point is a seed: the client will hold all {X.shape[0]} seed positions. "
                "Use bin_seeding=True or pass seeds.",
                stacklevel=3,
            )
        return choice

    def _shift(self, client, X, futs, seeds, center, fit_id, shift_args, strategy,
               progress=None, lattice=None, weights=None, all_rows=False):
        """The shift of ``seeds`` (None: every point, in row order) by ``strategy``.

        ``progress(iteration, n_active)`` (a :class:`ShiftProgress`) is told
        of every round of the "data" loop, and once when the "seeds" shards
        are done. With ``weights`` (a :class:`_Weights`), "every point" means
        every point of positive weight unless ``all_rows``."""
        if strategy == "seeds":
            out = self._shift_seeds(client, X, futs, seeds, fit_id, shift_args, weights,
                                    all_rows)
            if progress is not None:
                # Rounds run, as the loops count them: the stopping step is one.
                rounds = int(out["n_iter"].max()) + 1 if out["n_iter"].size else 0
                progress(min(rounds, shift_args["max_iter"]), 0)
            return out
        if seeds is None:
            logger.info("strategy='data' with every point as a seed: the client holds "
                        "%d seed positions; bin_seeding=True needs far fewer", X.shape[0])
            seeds = np.concatenate([_driver.to_numpy(c)
                                    for c in _gather(client, futs, "seeding")])
            if weights is not None and not all_rows:
                seeds = seeds[weights.on_client(client) > 0]
        seeds = np.ascontiguousarray(_driver.to_numpy(seeds), dtype=X.dtype)
        return self._shift_data(client, futs, seeds, center, fit_id, shift_args, progress,
                                lattice, weights)

    def _shift_seeds(self, client, X, futs, seeds, fit_id, shift_args, weights=None,
                     all_rows=False):
        """Data assembled once (one task), seeds sharded one shard per worker."""
        workers = _workers(client)
        nw = len(workers)
        X_full = client.submit(_concat_rows, *futs, key=f"gms-data-{fit_id}")
        W_full = None
        if weights is not None:
            W_full = client.submit(_concat_weights, *weights.futs, key=f"gms-weights-{fit_id}")
        seed_weights = [None] * nw
        if seeds is None:  # every point seeds: shard by chunks, never via the client
            groups = [g for g in np.array_split(np.arange(len(futs)), nw) if g.size]
            shards = [[futs[i] for i in g] for g in groups]
            if weights is not None and not all_rows:  # rows of weight 0 are no seeds
                seed_weights = [[weights.futs[i] for i in g] for g in groups]
        else:
            shards = [s for s in np.array_split(seeds, min(nw, len(seeds))) if len(s)]
        tasks = [
            client.submit(_shift_task, X_full, shard, backend=self.backend, n_jobs=self.n_jobs,
                          algorithm=self.algorithm, max_memory=self.max_memory, **shift_args,
                          weights=W_full, seed_weights=seed_weights[i],
                          key=f"gms-shift-{fit_id}-{i}",
                          workers=[workers[i % nw]], allow_other_workers=True)
            for i, shard in enumerate(shards)
        ]
        hook = getattr(self, "_on_iteration", None)
        if hook is not None:
            hook("seeds", 0)
        results = _gather(client, tasks, "the shift (strategy 'seeds')")
        del X_full, W_full, tasks
        cat = lambda f: np.concatenate([r[f] for r in results])  # noqa: E731
        stats = {"strategy": "seeds", "rounds": 1,
                 "task_seconds": [max(r["seconds"] for r in results)]}
        return {"modes": cat("modes"), "n_iter": cat("n_iter"), "intensity": cat("intensity"),
                "converged": cat("converged"), "backends": {r["backend"] for r in results},
                "algorithms": {r["algorithm"] for r in results}, "stats": stats}

    def _shift_data(self, client, futs, seeds, center, fit_id, shift_args, progress=None,
                    lattice=None, weights=None):
        """The shift loop on the client; each step's sums come from the chunks.

        The same arithmetic and bookkeeping as the NumPy backend's loop, so
        the stopping rule, ``n_iter`` and intensity are the single-machine ones.
        ``lattice`` (integer-valued float64 data, flat kernel: max|x|, else
        None): positions stay in the data's own units, each a mean of integer
        rows (exact sums, so np.mean's bits), boundary ties decided exactly
        (``_partial_sums``).
        """
        h, kernel = shift_args["bandwidth"], shift_args["kernel"]
        max_iter, tol = shift_args["max_iter"], shift_args["tol"]
        dtype = seeds.dtype
        if lattice is not None:
            center, inv_h = np.zeros_like(center), 1.0
            S = seeds.copy()
        else:
            inv_h = 1.0 / h
            S = ((seeds - center.astype(dtype)) * dtype.type(inv_h)).astype(dtype, copy=False)
        m, d = S.shape
        pos = S.copy()
        n_iter = np.zeros(m, dtype=np.int64)
        intensity = np.zeros(m, dtype=np.int64 if weights is None else np.float64)
        scale = None
        if weights is not None and weights.common is not None:
            scale, weights = weights.common, None  # equal weights: the unweighted steps
        converged = np.zeros(m, dtype=bool)
        orphaned = np.zeros(m, dtype=bool)
        active = np.arange(m)
        thresh2 = float(tol) * float(tol)  # inf, not OverflowError, past 1e154
        truncate = None
        if self.algorithm == "grid" and kernel == "gaussian":
            truncate = _GAUSSIAN_GRID_RADIUS
        hook = getattr(self, "_on_iteration", None)
        names: set[str] = set()
        task_seconds = []
        who = client.who_has(futs)
        where = [next(iter(who.get(f.key, ())), None) for f in futs]
        it = 0
        while active.size:
            q = np.ascontiguousarray(pos[active])
            exact = None if lattice is None else (h, max(lattice, float(np.abs(q).max())))
            # One task per worker, pinned to the worker holding its chunks;
            # loosely: a lost worker's chunks are recomputed elsewhere and
            # their task follows them.
            groups: dict = {}
            for i, w in enumerate(where):
                groups.setdefault(w, []).append(i)
            submitted = [
                (idx, client.submit(_round_task, [futs[i] for i in idx], q, center, inv_h, kernel,
                                    truncate, self.max_memory, exact,
                                    None if weights is None else [weights.futs[i] for i in idx],
                                    key=f"gms-partial-{fit_id}-{it}-{g}",
                                    workers=[w] if w else None, allow_other_workers=True))
                for g, (w, idx) in enumerate(groups.items())
            ]
            results = _gather(client, [t for _, t in submitted],
                              f"shift iteration {it} (strategy 'data')")
            sums = [None] * len(futs)
            for (idx, _), r in zip(submitted, results):
                for i, part in zip(idx, r["sums"]):
                    sums[i] = part
                    # The task ran where the chunk is now: pin the next round
                    # there, with no extra round trip to the scheduler.
                    where[i] = r["worker"]
            del submitted
            acc = sums[0][0].copy()
            cnt = sums[0][1].copy()
            for a, c in sums[1:]:  # chunk order: a fixed summation order
                acc += a
                cnt += c
            names.update(r["xp"] for r in results)
            task_seconds.append(max(r["seconds"] for r in results))

            old = pos[active]
            wsum = acc[:, d]
            ok = wsum > 0
            new = old.copy()
            new[ok] = acc[ok, :d] / wsum[ok, None]
            orphan = ~ok
            moved2 = np.einsum("ij,ij->i", new - old, new - old)
            if lattice is not None:  # scikit-learn's rule, data's units: |new - old| <= tol * h
                done_tol = (np.sqrt(moved2) <= float(tol) * h) & ~orphan
            else:
                done_tol = (moved2 <= thresh2) & ~orphan
            stop = orphan | done_tol | (it >= max_iter)
            intensity[active] = cnt  # from where this step started
            pos[active[ok]] = new[ok]
            converged[active[done_tol]] = True
            orphaned[active[orphan]] = True
            n_iter[active[~stop]] += 1
            active = active[~stop]
            it += 1
            if hook is not None:
                hook("data", it)
            if progress is not None:
                progress(min(it, max_iter), active.size)
        intensity[orphaned] = 0
        if scale is not None:
            intensity *= scale
        modes = pos if lattice is not None else (pos.astype(np.float64) * h + center).astype(dtype)
        stats = {"strategy": "data", "rounds": it, "task_seconds": task_seconds}
        return {"modes": modes, "n_iter": n_iter, "intensity": intensity, "converged": converged,
                "backends": names, "algorithms": {"grid" if self.algorithm == "grid" else "brute"},
                "stats": stats}

    # ------------------------------------------------------------ predicting
    def predict(self, X, *, outlier_threshold=None):
        """Label each point with its nearest cluster center.

        Parameters
        ----------
        X : dask array or array-like of shape (n_samples, n_features)
            New data. A Dask array gives a lazy Dask array of labels (one
            ``map_blocks`` task per chunk); anything else is labelled here,
            as :meth:`gpumeanshift.MeanShift.predict` does.
        outlier_threshold : float or "bandwidth", default=None
            When given, points farther than this from every center are -1.

        Returns
        -------
        labels : dask array or ndarray of shape (n_samples,)

        Examples
        --------
        >>> import numpy as np, dask.array as da
        >>> from distributed import Client
        >>> from gpumeanshift.dask import MeanShift
        >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
        ...                 dashboard_address=":0")
        >>> X = da.from_array(np.array([[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]]),
        ...                   chunks=3)
        >>> ms = MeanShift(bandwidth=2, kernel="flat", backend="numpy").fit(X)
        >>> labels = ms.predict(da.from_array(np.array([[0, 0], [5, 5], [9, 9]]), chunks=2),
        ...                     outlier_threshold="bandwidth")
        >>> labels.chunks, labels.compute()
        (((2, 1),), array([ 1,  0, -1]))
        >>> ms.predict(np.array([[0, 0], [5, 5]]))
        array([1, 0])
        >>> client.close()
        """
        if not isinstance(X, da.Array):
            return super().predict(X, outlier_threshold=outlier_threshold)
        self._check_fitted()
        X = _as_dask_array(X)
        threshold = self._predict_threshold(X, outlier_threshold)
        centers = self._centers_host.astype(X.dtype, copy=False)
        return X.map_blocks(_label_block, centers, threshold, self.backend, self.n_jobs,
                            getattr(self, "max_memory", None),
                            drop_axis=1, dtype=np.int64, meta=_label_meta(X))

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit and return ``labels_`` (a Dask array).

        Parameters
        ----------
        X : dask array of shape (n_samples, n_features)
            Samples to cluster.
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like or dask array of shape (n_samples,), default=None
            Weights of the rows, as for :meth:`fit`.

        Returns
        -------
        labels : dask array of shape (n_samples,)

        Examples
        --------
        >>> import numpy as np, dask.array as da
        >>> from distributed import Client
        >>> from gpumeanshift.dask import MeanShift
        >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
        ...                 dashboard_address=":0")
        >>> X = da.from_array(np.array([[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]]),
        ...                   chunks=3)
        >>> labels = MeanShift(bandwidth=2, kernel="flat", backend="numpy").fit_predict(X)
        >>> labels.chunks, labels.compute()
        (((3, 3),), array([1, 1, 1, 0, 0, 0]))
        >>> client.close()
        """
        return self.fit(X, sample_weight=sample_weight).labels_


def _distinct_block(block, weights=None):
    """The chunk's distinct rows and their counts (summed weights with
    ``weights``, rows of weight 0 left out)."""
    block = np.ascontiguousarray(_driver.to_numpy(block))
    if weights is not None:
        weights = _driver.to_numpy(weights).astype(np.float64, copy=False).ravel()
    return _driver.distinct_rows(block, weights)


def _basin_outliers(block, labels, centers, h):
    """-1 for the points of a block farther than h from their basin's center."""
    xp = _xp(block)
    labels = labels[:, 0]
    diff = block.astype(np.float64) - xp.asarray(centers, dtype=np.float64)[labels]
    return xp.where((diff * diff).sum(axis=1) <= h * h, labels, -1)


def _like(block, meta):
    return _xp(meta).asarray(block)


def _basin_labels(X, point_modes, centers, threshold):
    """label_assignment="basin": each point takes the center nearest its own mode."""
    be = resolve_backend("numpy")  # on the client, where the modes are
    labels, _ = be.nearest(np.ascontiguousarray(point_modes, dtype=X.dtype),
                           np.ascontiguousarray(centers, dtype=X.dtype))
    labels = da.from_array(_driver.to_numpy(labels).astype(np.int64), chunks=(X.chunks[0],))
    if is_device_array(X._meta):
        labels = labels.map_blocks(_like, _label_meta(X), dtype=np.int64, meta=_label_meta(X))
    if threshold is None:
        return labels
    return da.map_blocks(_basin_outliers, X, labels[:, None], centers, threshold, drop_axis=1,
                         dtype=np.int64, meta=_label_meta(X))
