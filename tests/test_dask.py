"""gpumeanshift.dask on a local cluster of 2 worker processes (CPU, NumPy backend).

The fault tests kill worker processes and come last in the file.

Every fit is compared with the single-machine :class:`gpumeanshift.MeanShift`
on the same data: centers within 1e-9, identical labels, equal ``n_iter_``.
"""

import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from distributed.diagnostics.plugin import SchedulerPlugin  # noqa: E402

import gpumeanshift.dask as gdask  # noqa: E402
from gpumeanshift import MeanShift, estimate_bandwidth  # noqa: E402

BANDWIDTH = 0.8
CHUNK = 150  # 600 points -> 4 chunks over 2 workers


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0", silence_logs=logging.ERROR) as lc, \
            Client(lc) as client:
        yield lc, client


@pytest.fixture
def client(cluster):
    lc, client = cluster
    # A fault test's victim is restarted by its nanny (slow on a loaded machine).
    client.wait_for_workers(2, timeout=300)
    return client


@pytest.fixture(scope="module")
def X(blobs):
    return blobs[0]


def assert_same_fit(ours, ref):
    centers = np.asarray(ours.cluster_centers_)
    assert centers.shape == ref.cluster_centers_.shape
    np.testing.assert_allclose(centers, ref.cluster_centers_, rtol=0, atol=1e-9)
    assert isinstance(ours.labels_, da.Array)
    np.testing.assert_array_equal(ours.labels_.compute(), ref.labels_)
    assert ours.n_iter_ == ref.n_iter_
    np.testing.assert_array_equal(ours.cluster_sizes_, ref.cluster_sizes_)
    np.testing.assert_array_equal(ours.center_intensity_, ref.center_intensity_)
    assert ours.bandwidth_ == pytest.approx(ref.bandwidth_, rel=1e-12)
    assert ours.n_features_in_ == ref.n_features_in_


def reference(X, **params):
    return MeanShift(backend="numpy", **params).fit(X)


@pytest.mark.parametrize("bin_seeding", [False, True])
@pytest.mark.parametrize("kernel", ["gaussian", "flat"])
@pytest.mark.parametrize("strategy", ["seeds", "data"])
def test_matches_single_machine(client, X, strategy, kernel, bin_seeding):
    params = dict(bandwidth=BANDWIDTH, kernel=kernel, bin_seeding=bin_seeding)
    ours = gdask.MeanShift(backend="numpy", strategy=strategy, **params)
    ours.fit(da.from_array(X, chunks=CHUNK))
    assert ours.strategy_ == strategy
    assert ours.backend_ == "numpy"
    assert_same_fit(ours, reference(X, **params))


@pytest.mark.parametrize("strategy", ["seeds", "data"])
@pytest.mark.parametrize("d, bandwidth", [(2, 1.0), (2, 1.5), (3, 1.0), (3, 1.5)])
def test_integer_lattice_matches_single_machine_exactly(client, strategy, d, bandwidth):
    """Integer data put points at exactly one bandwidth from climbing seeds;
    both strategies take the single-machine fit's (scikit-learn's) side of
    every such boundary: the same centers bit for bit, labels, n_iter_ and
    intensities."""
    X = np.random.default_rng(d * 10 + int(bandwidth * 2)).integers(
        0, 6, size=(300, d)).astype(np.float64)
    for bin_seeding in (False, True):
        params = dict(bandwidth=bandwidth, kernel="flat", bin_seeding=bin_seeding)
        ours = gdask.MeanShift(backend="numpy", strategy=strategy, **params)
        ours.fit(da.from_array(X, chunks=70))
        ref = reference(X, **params)
        np.testing.assert_array_equal(np.asarray(ours.cluster_centers_), ref.cluster_centers_)
        np.testing.assert_array_equal(ours.labels_.compute(), ref.labels_)
        assert ours.n_iter_ == ref.n_iter_
        np.testing.assert_array_equal(ours.center_intensity_, ref.center_intensity_)


@pytest.mark.parametrize("strategy", ["seeds", "data"])
def test_float32_within_float32_rounding(client, X, strategy):
    X32 = X.astype(np.float32)
    params = dict(bandwidth=BANDWIDTH, kernel="gaussian", bin_seeding=True)
    ref = reference(X32, **params)
    ours = gdask.MeanShift(backend="numpy", strategy=strategy, **params)
    ours.fit(da.from_array(X32, chunks=CHUNK))
    assert ours.cluster_centers_.dtype == np.float32
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(ours.labels_.compute(), ref.labels_)
    assert ours.n_iter_ == ref.n_iter_


def test_cluster_all_false_and_explicit_seeds(client, X):
    seeds = X[::40]
    params = dict(bandwidth=0.5, kernel="flat", seeds=seeds, cluster_all=False)
    ref = reference(X, **params)
    assert (ref.labels_ == -1).any()  # the case is meaningful
    for strategy in ("seeds", "data"):
        ours = gdask.MeanShift(backend="numpy", strategy=strategy, **params)
        assert_same_fit(ours.fit(da.from_array(X, chunks=CHUNK)), ref)


@pytest.mark.parametrize("strategy", ["seeds", "data"])
@pytest.mark.parametrize("extra", [
    dict(algorithm="grid", kernel="gaussian", bin_seeding=True),  # truncated as the grid does
    dict(label_assignment="basin", bin_seeding=True, cluster_all=False, bandwidth=0.5),
], ids=["grid-gaussian", "basin-outliers"])
def test_algorithm_and_basin_labels(client, X, strategy, extra):
    params = dict(bandwidth=BANDWIDTH, **extra) if "bandwidth" not in extra else dict(extra)
    ref = reference(X, **params)
    ours = gdask.MeanShift(backend="numpy", strategy=strategy, **params)
    assert_same_fit(ours.fit(da.from_array(X, chunks=CHUNK)), ref)
    assert ours.algorithm_ == ref.algorithm_


def test_auto_strategy_says_what_it_chose(client, X, caplog, monkeypatch):
    Xd = da.from_array(X, chunks=CHUNK)
    with caplog.at_level(logging.INFO, logger="gpumeanshift"):
        small = gdask.MeanShift(bandwidth=BANDWIDTH, kernel="flat", bin_seeding=True,
                                backend="numpy").fit(Xd)
    assert small.strategy_ == "seeds"
    assert "strategy='auto' chose 'seeds'" in caplog.text
    caplog.clear()
    # Pretend the data need more than any worker has.
    monkeypatch.setattr(gdask._strategies, "_SEEDS_MEMORY_FACTOR", 1e12)
    with caplog.at_level(logging.INFO, logger="gpumeanshift"):
        big = gdask.MeanShift(bandwidth=BANDWIDTH, kernel="flat", bin_seeding=True,
                              backend="numpy").fit(Xd)
    assert big.strategy_ == "data"
    assert "strategy='auto' chose 'data'" in caplog.text
    assert_same_fit(big, reference(X, bandwidth=BANDWIDTH, kernel="flat", bin_seeding=True))
    # Every point a seed on data too big for a worker: the client holds them all; say so.
    with pytest.warns(UserWarning, match="every point is a seed"):
        every = gdask.MeanShift(bandwidth=BANDWIDTH, kernel="flat", backend="numpy").fit(Xd)
    assert every.strategy_ == "data"
    assert_same_fit(every, reference(X, bandwidth=BANDWIDTH, kernel="flat"))


class _ResultSizes(SchedulerPlugin):
    """Records the size of every task result that reaches a worker's memory."""

    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.nbytes = {}

    def transition(self, key, start, finish, *args, **kwargs):
        if finish == "memory":
            ts = self.scheduler.tasks.get(key)
            if ts is not None:
                self.nbytes[key] = ts.nbytes


def _generated_blobs(n=2000, chunk=500):
    """Three blobs made chunk by chunk on the workers (never sent by the client)."""
    rng = da.random.default_rng(7)
    z = rng.standard_normal((n, 2), chunks=(chunk, 2))
    k = rng.integers(0, 3, size=(n, 1), chunks=(chunk, 1))
    return z * 0.4 + (k == 0) * np.array([1.0, 1.0]) + (k == 1) * np.array([-1.0, -1.0]) \
        + (k == 2) * np.array([1.0, -1.0])


def _fit_watching(cluster, client, Xd, strategy):
    lc, _ = cluster
    client.run(lambda dask_worker: dask_worker.transfer_incoming_log.clear())
    client.run(lambda dask_worker: dask_worker.transfer_outgoing_log.clear())
    plugin = _ResultSizes(lc.scheduler)
    lc.scheduler.add_plugin(plugin, name="result-sizes")
    try:
        model = gdask.MeanShift(bandwidth=BANDWIDTH, kernel="gaussian", bin_seeding=True,
                                backend="numpy", strategy=strategy).fit(Xd)
    finally:
        lc.scheduler.remove_plugin(name="result-sizes")

    def moved_keys(dask_worker):
        logs = list(dask_worker.transfer_incoming_log) + list(dask_worker.transfer_outgoing_log)
        return [k for entry in logs for k in entry["keys"]]

    moved = {k for keys in client.run(moved_keys).values() for k in keys}
    return model, plugin.nbytes, moved


def test_data_strategy_never_gathers_the_data(cluster, client):
    Xd = _generated_blobs()
    chunk_bytes = 500 * 2 * 8
    X_local = Xd.compute(scheduler="sync")  # the reference's copy, made in this process
    chunk_keys = {row[0] for row in Xd.__dask_keys__()}
    ref = reference(X_local, bandwidth=BANDWIDTH, kernel="gaussian", bin_seeding=True)

    model, nbytes, moved = _fit_watching(cluster, client, Xd, "data")
    assert_same_fit(model, ref)
    assert nbytes, "the plugin saw no task results"
    assert max(nbytes.values()) <= chunk_bytes, max(nbytes.items(), key=lambda kv: kv[1])
    assert not moved & chunk_keys, "a chunk of the data left its worker"

    # The check does see a gathered data set: the "seeds" strategy assembles one.
    model, nbytes, _ = _fit_watching(cluster, client, Xd, "seeds")
    assert_same_fit(model, ref)
    assert max(nbytes.values()) >= 4 * chunk_bytes


def test_predict_and_labels_are_dask_arrays(client, X):
    Xd = da.from_array(X, chunks=CHUNK)
    ours = gdask.MeanShift(bandwidth=BANDWIDTH, bin_seeding=True, backend="numpy",
                           strategy="data").fit(Xd)
    ref = reference(X, bandwidth=BANDWIDTH, bin_seeding=True)
    assert ours.labels_.chunks == (Xd.chunks[0],)
    new = np.array([[0.0, 0.0], [1.1, 0.9], [9.0, 9.0]])
    pred = ours.predict(da.from_array(new, chunks=2), outlier_threshold="bandwidth")
    assert isinstance(pred, da.Array)
    np.testing.assert_array_equal(pred.compute(),
                                  ref.predict(new, outlier_threshold="bandwidth"))
    # NumPy in, NumPy out (computed here, like the single-machine estimator).
    np.testing.assert_array_equal(ours.predict(new), ref.predict(new))
    np.testing.assert_array_equal(ours.fit_predict(Xd).compute(), ref.labels_)


def test_estimate_bandwidth_on_dask_arrays(client, X):
    Xd = da.from_array(X, chunks=CHUNK)
    assert gdask.estimate_bandwidth(Xd) == pytest.approx(estimate_bandwidth(X), rel=1e-12)
    assert gdask.estimate_bandwidth(Xd, quantile=0.1, n_samples=200, random_state=3) == \
        pytest.approx(estimate_bandwidth(X, quantile=0.1, n_samples=200, random_state=3),
                      rel=1e-12)
    # bandwidth=None and the rules of thumb give the single-machine bandwidth_.
    for bandwidth in (None, "scott"):
        ours = gdask.MeanShift(bandwidth=bandwidth, bin_seeding=True, backend="numpy",
                               strategy="data").fit(Xd)
        assert_same_fit(ours, reference(X, bandwidth=bandwidth, bin_seeding=True))


def test_invalid_input(client, X):
    with pytest.raises(ValueError, match="strategy must be one of"):
        gdask.MeanShift(bandwidth=1.0, strategy="both").fit(da.from_array(X, chunks=CHUNK))
    with pytest.raises(ValueError, match="contains NaN or infinity"):
        bad = X.copy()
        bad[3, 1] = np.nan
        gdask.MeanShift(bandwidth=1.0, backend="numpy").fit(da.from_array(bad, chunks=CHUNK))


@pytest.mark.parametrize("bad", [
    np.zeros(6),                       # 1-D
    np.zeros((2, 3, 2)),               # 3-D
    np.zeros((5, 0)),                  # no features
    np.zeros((0, 2)),                  # no rows
    np.zeros((4, 2), dtype=complex),   # complex
], ids=["1d", "3d", "no-features", "no-rows", "complex"])
def test_dask_refuses_a_layout_with_the_estimator_s_words(client, bad):
    """The checks a Dask array's metadata answer are check_array's own."""
    from gpumeanshift._validation import check_array

    with pytest.raises(ValueError) as local:
        check_array(bad)
    with pytest.raises(ValueError) as distributed_:
        gdask.MeanShift(bandwidth=1.0, backend="numpy").fit(da.from_array(bad))
    assert str(distributed_.value) == str(local.value)


def test_dask_refuses_unknown_chunk_sizes(client, X):
    lazy = da.from_array(X, chunks=CHUNK)
    lazy = lazy[lazy[:, 0] > -np.inf]  # a boolean mask: row counts unknown until computed
    with pytest.raises(ValueError, match="unknown chunk sizes; call X.compute_chunk_sizes"):
        gdask.MeanShift(bandwidth=1.0, backend="numpy").fit(lazy)


@pytest.mark.parametrize("strategy", ["seeds", "data"])
@pytest.mark.parametrize("kernel", ["gaussian", "flat"])
def test_max_memory_does_not_change_the_result(client, X, strategy, kernel):
    """A limit that forces blocks of a few rows on every worker: same fit."""
    params = dict(bandwidth=BANDWIDTH, kernel=kernel, bin_seeding=True)
    ours = gdask.MeanShift(backend="numpy", strategy=strategy, n_jobs=1,
                           max_memory=1024 * 32, **params)
    assert ours.get_params()["max_memory"] == 1024 * 32
    ours.fit(da.from_array(X, chunks=CHUNK))
    assert_same_fit(ours, reference(X, **params))


def test_max_memory_rejected_when_too_small_or_for_a_backend_object(client, X):
    from gpumeanshift.backends.numpy.backend import NumpyBackend

    Xd = da.from_array(X, chunks=CHUNK)
    with pytest.raises(ValueError, match="max_memory=1000 bytes is too small"):
        gdask.MeanShift(bandwidth=1.0, backend="numpy", max_memory=1000).fit(Xd)
    with pytest.raises(ValueError, match="max_memory applies to a backend given by name"):
        gdask.MeanShift(bandwidth=1.0, backend=NumpyBackend(), max_memory=10**6).fit(Xd)
    with pytest.raises(ValueError, match="max_memory"):
        gdask.MeanShift(bandwidth=1.0, backend="numpy", max_memory=0).fit(Xd)


@pytest.mark.parametrize("strategy", ["seeds", "data"])
def test_verbose_logs_start_rounds_and_end(client, X, caplog, strategy):
    Xd = da.from_array(X, chunks=CHUNK)
    with caplog.at_level(logging.INFO, logger="gpumeanshift"):
        ms = gdask.MeanShift(bandwidth=BANDWIDTH, bin_seeding=True, backend="numpy",
                             strategy=strategy, verbose=1).fit(Xd)
    text = [r.getMessage() for r in caplog.records if r.name == "gpumeanshift"]
    assert any(t.startswith("dask fit: 600 points x 2 features in 4 chunks") for t in text)
    rounds = [t for t in text if t.startswith("shift: iteration")]
    if strategy == "data":
        assert len(rounds) == ms.n_iter_ + 1  # every round, the stopping one included
    else:
        assert len(rounds) == 1
    # As on one machine: the rounds run, the stopping one included.
    assert rounds[-1].startswith(f"shift: iteration {ms.n_iter_ + 1} of at most 300")
    assert "0 of" in rounds[-1]
    assert any(t.startswith(f"dask fit: {len(ms.cluster_centers_)} clusters") for t in text)


def test_verbose_off_logs_nothing_at_info(client, X, caplog):
    with caplog.at_level(logging.INFO, logger="gpumeanshift"):
        gdask.MeanShift(bandwidth=BANDWIDTH, backend="numpy", strategy="data").fit(
            da.from_array(X, chunks=CHUNK))
    assert not [r for r in caplog.records if r.name == "gpumeanshift" and r.levelno >= logging.INFO
                and r.getMessage().startswith(("dask fit", "shift:"))]


def test_core_package_does_not_import_dask():
    code = ("import sys, gpumeanshift; "
            "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _kill_worker(client, address):
    pids = client.run(os.getpid, workers=[address])
    os.kill(pids[address], signal.SIGKILL)


@pytest.mark.parametrize("strategy", ["seeds", "data"])
def test_worker_killed_mid_fit_gives_the_right_result(client, X, strategy):
    params = dict(bandwidth=BANDWIDTH, kernel="gaussian", bin_seeding=False)
    Xd = da.from_array(X, chunks=CHUNK)
    model = gdask.MeanShift(backend="numpy", strategy=strategy, **params)
    killed = []

    def kill_one(stage, iteration):
        if killed or (stage == "data" and iteration != 3):
            return
        victim = sorted(client.scheduler_info()["workers"])[0]
        if stage == "seeds":  # wait until a shard's shift is running there
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not any(
                    "gms-shift" in str(k) for k in client.processing().get(victim, ())):
                time.sleep(0.005)
        _kill_worker(client, victim)
        killed.append(victim)

    model._on_iteration = kill_one
    model.fit(Xd)
    assert killed and killed[0] not in client.scheduler_info()["workers"]
    assert_same_fit(model, reference(X, **params))


def test_lost_scattered_data_raise_a_clear_error(client, X):
    # Scattered chunks cannot be recomputed: losing one must fail the fit.
    from dask import delayed

    parts = [X[i:i + CHUNK] for i in range(0, len(X), CHUNK)]
    futs = client.scatter(parts)
    Xd = da.concatenate([da.from_delayed(delayed(f), p.shape, p.dtype)
                         for f, p in zip(futs, parts)])
    model = gdask.MeanShift(bandwidth=BANDWIDTH, bin_seeding=True, backend="numpy",
                            strategy="data")

    def kill_holder(stage, iteration):
        if iteration == 2:
            holder = next(iter(client.who_has(futs[0])[futs[0].key]))
            _kill_worker(client, holder)

    model._on_iteration = kill_holder
    with pytest.raises(RuntimeError, match="a worker was lost"):
        model.fit(Xd)
    assert not hasattr(model, "cluster_centers_")
