"""The cluster's side of the Dask fit: the client, the workers and their
backends, the input as a Dask array, its chunks' futures and gathering them."""

from __future__ import annotations

import math

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

from .. import _driver
from .._validation import check_array, check_layout, is_device_array
from ..backends.base import auto_choice

# Failures that mean "a worker and what it held are gone for good".
_LOST = (KilledWorker, FutureCancelledError)

def _xp(a):
    """The array module of ``a`` (CuPy for device arrays, else NumPy)."""
    if is_device_array(a):
        import cupy

        return cupy
    return np


def _worker_backend(backend, n_threads, max_memory=None):
    """Resolve ``backend`` on the worker running this task, as one machine does
    (:func:`gpumeanshift._driver.make_backend`): "auto" is decided where the
    task runs (a GPU worker gets the CUDA backend); ``n_threads`` only goes to
    the NumPy backend, ``max_memory`` (bytes of scratch memory per call) to
    either. A backend object is used as it is."""
    if not isinstance(backend, str):
        return backend
    return _driver.make_backend(backend, n_jobs=n_threads, max_memory=max_memory)


def _task_threads(n_jobs):
    """Threads for one backend call: n_jobs, else the worker's thread count."""
    if n_jobs is not None and n_jobs > 0:
        return n_jobs
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except (ValueError, AttributeError):  # not on a worker (synchronous scheduler)
        return None


def _worker_address():
    try:
        from distributed import get_worker

        return get_worker().address
    except ValueError:  # not on a worker
        return None


def _worker_capacity(dask_worker, backend):
    """Bytes the fit may count on in this worker: host memory, or GPU memory."""
    limit = getattr(dask_worker.memory_manager, "memory_limit", None)
    if not limit:
        import psutil

        limit = psutil.virtual_memory().total
    if isinstance(backend, str) and (backend if backend != "auto" else auto_choice()) == "cupy":
        try:
            import cupy

            limit = min(limit, cupy.cuda.Device().mem_info[1])
        except Exception:  # no usable device after all: host memory it is
            pass
    return int(limit)


def _concat_rows(*chunks):
    """The rows of the chunks, in order, as one C-contiguous array."""
    xp = _xp(chunks[0])
    out = chunks[0] if len(chunks) == 1 else xp.concatenate(chunks)
    return xp.ascontiguousarray(out)


def _concat_weights(*chunks):
    """The weight chunks (columns of shape (rows, 1)) as one float64 vector."""
    return np.ascontiguousarray(np.concatenate(
        [_driver.to_numpy(c).ravel() for c in chunks]).astype(np.float64, copy=False))


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
    """A 2-D Dask array of float32/float64, chunked along rows only: the
    checks of ``check_array`` that the metadata answer (finiteness is checked
    in the first pass over the data, ``_passes._finite_and_center``)."""
    if not isinstance(X, da.Array):
        X = da.from_array(check_array(X, name=name))
    if X.ndim == 2 and any(math.isnan(s) for s in X.shape):
        raise ValueError(f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes() first")
    dtype = check_layout(X, name=name)
    if X.dtype != dtype:
        X = X.astype(dtype)
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
    # Asked of the scheduler each time: scheduler_info() may answer from the
    # client's cache, which can lag behind a restarted worker.
    workers = sorted(client.nthreads())
    if not workers:
        raise RuntimeError("the Dask cluster has no workers")
    return workers


def _label_meta(X):
    """An empty 1-D int64 array of X's array type (the meta of label arrays)."""
    return X._meta.reshape(-1)[:0].astype(np.int64)


def _like(block, meta):
    return _xp(meta).asarray(block)
