"""Bandwidth estimation of a Dask array (:func:`estimate_bandwidth`)."""

from __future__ import annotations

import math

import numpy as np

import dask.array as da

from .._validation import check_int, check_real
from ..bandwidth import _check_random_state
from ..bandwidth import estimate_bandwidth as _local_estimate_bandwidth
from ._cluster import _as_dask_array, _chunk_futures, _concat_rows, _concat_weights, _gather, \
    _get_client, _workers
from ._passes import _as_weights, _finite_and_center
from ._tasks import _kth_block

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
