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
    sums ``sum w x``, ``sum w`` and the count of points within one bandwidth,
    computed by the worker's backend
    (:meth:`~gpumeanshift.backends.base.Backend.partial_sums`: the NumPy
    backend's tiled step, the CUDA backend's split kernel); the client adds
    them up (in chunk order) and :class:`gpumeanshift._driver.StepLoop` takes
    the step, applies the stopping rule and drops the seeds that stopped. The
    stopping rule, ``n_iter`` and the intensity are those of
    :class:`~gpumeanshift.backends.base.ShiftResult`. The client
    holds the seeds (a few thousand with bin seeding; every point without).
``strategy="auto"``
    "seeds" when about five times the data fits in half the memory of the
    smallest worker (the GPU's memory on GPU workers), else "data"; the
    choice is logged at INFO level and kept in ``strategy_``.

Everything the workers compute is a deterministic function of the data and
the seeds, so when a worker dies Dask recomputes what it held and the fit
gives the same result; when the lost pieces cannot be recomputed (scattered
data) the fit raises :class:`RuntimeError` instead of returning centers.

Modules: ``_estimator`` (the estimator), ``_strategies`` (the distributed
shift), ``_passes`` (the passes over the data around it), ``_tasks`` (what
the workers run), ``_bandwidth`` (:func:`estimate_bandwidth`) and
``_cluster`` (client, workers, chunks).
"""

from __future__ import annotations

from ._bandwidth import estimate_bandwidth
from ._estimator import STRATEGIES, MeanShift

__all__ = ["MeanShift", "estimate_bandwidth", "STRATEGIES"]
