"""The distributed shift: the "seeds" and "data" strategies, the choice
between them ("auto") and the shift with bandwidth 0."""

from __future__ import annotations

import logging
import warnings

import numpy as np

from .. import _driver
from ._cluster import _concat_rows, _concat_weights, _gather, _worker_capacity, _workers
from ._tasks import _distinct_block, _round_task, _shift_task

logger = logging.getLogger("gpumeanshift")

# "seeds" needs the whole data set on each worker: the NumPy backend keeps a
# centred copy and a sorted copy with a column of ones (about 3.5x the data)
# besides the worker's own share of the chunks.
_SEEDS_MEMORY_FACTOR = 5.0
_SEEDS_MEMORY_FRACTION = 0.5


class _Strategies:
    """The shift of :class:`gpumeanshift.dask.MeanShift`: its methods that
    run the loop on the cluster (mixed into the estimator)."""

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
        """The shift loop on the client (:class:`gpumeanshift._driver.StepLoop`);
        each step's sums come from the chunks, on the workers holding them
        (:meth:`~gpumeanshift.backends.base.Backend.partial_sums`).

        ``lattice`` (integer-valued float64 data, flat kernel: max|x|, else
        None): positions stay in the data's own units, each a mean of integer
        rows (exact sums, so np.mean's bits), boundary ties decided exactly
        (``partial_sums(exact=True)``). Otherwise the frame is the data less
        their column means, in bandwidths.
        """
        h, kernel = shift_args["bandwidth"], shift_args["kernel"]
        dtype = seeds.dtype
        exact = lattice is not None
        if exact:
            origin, S = None, seeds
        else:
            origin = center.astype(np.float64)
            S = ((seeds - center.astype(dtype)) * dtype.type(1.0 / h)).astype(dtype, copy=False)
        scale = None
        if weights is not None and weights.common is not None:
            scale, weights = weights.common, None  # equal weights: the unweighted steps
        loop = _driver.StepLoop(S, bandwidth=h, max_iter=shift_args["max_iter"],
                                tol=shift_args["tol"], exact=exact,
                                weighted=weights is not None or scale is not None)
        algorithm = "grid" if self.algorithm == "grid" else "brute"
        task_args = dict(backend=self.backend, n_jobs=self.n_jobs, bandwidth=h, kernel=kernel,
                         origin=origin, exact=exact, algorithm=algorithm,
                         max_memory=self.max_memory)
        hook = getattr(self, "_on_iteration", None)
        names: set[str] = set()
        task_seconds = []
        who = client.who_has(futs)
        where = [next(iter(who.get(f.key, ())), None) for f in futs]
        while loop.active.size:
            q = loop.queries()
            it = loop.iteration
            # One task per worker, pinned to the worker holding its chunks;
            # loosely: a lost worker's chunks are recomputed elsewhere and
            # their task follows them.
            groups: dict = {}
            for i, w in enumerate(where):
                groups.setdefault(w, []).append(i)
            submitted = [
                (idx, client.submit(_round_task, [futs[i] for i in idx], q, **task_args,
                                    weights=None if weights is None else
                                    [weights.futs[i] for i in idx],
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
            loop.step(sums)  # chunk order: a fixed summation order
            names.update(r["backend"] for r in results)
            task_seconds.append(max(r["seconds"] for r in results))
            if hook is not None:
                hook("data", loop.iteration)
            if progress is not None:
                progress(min(loop.iteration, shift_args["max_iter"]), loop.active.size)
        intensity = loop.intensity
        if scale is not None:
            intensity *= scale
        pos = loop.positions
        modes = pos if exact else (pos.astype(np.float64) * h + center).astype(dtype)
        stats = {"strategy": "data", "rounds": loop.iteration, "task_seconds": task_seconds}
        return {"modes": modes, "n_iter": loop.n_iter, "intensity": intensity,
                "converged": loop.converged, "backends": names,
                "algorithms": {algorithm}, "stats": stats}


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
