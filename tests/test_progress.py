"""Progress and logging: ``verbose``, the package logger, the shift loop's progress callback
and the tqdm bar; the ConvergenceWarning when ``max_iter`` stops seeds."""

import io
import logging
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import gpumeanshift as gms
from gpumeanshift import _progress
from gpumeanshift.backends.numpy.backend import NumpyBackend

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

rng = np.random.default_rng(0)
X = np.concatenate([rng.normal(c, 0.5, size=(80, 2)) for c in ([0, 0], [4, 4], [0, 4])])


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, iteration, n_active):
        self.calls.append((iteration, n_active))


def check_rounds(calls, n_iter, steps, max_iter):
    """After round r (``steps`` steps each), the seeds still moving are exactly
    those that completed at least r * steps iterations (a seed with n_iter = j
    stops during step j + 1): an independent count from the backend's results."""
    n_iter = np.asarray(n_iter)
    assert len(calls) >= 1
    its = [c[0] for c in calls]
    active = [c[1] for c in calls]
    assert all(a >= b for a, b in zip(active, active[1:])), active
    assert active[-1] == 0
    for r, (it, a) in enumerate(calls, start=1):
        assert it == min(r * steps, max_iter)
        assert a == int(np.count_nonzero(n_iter >= r * steps)), (r, a)


# ------------------------------------------------------------------ the logger
def test_library_configures_no_logging_handlers():
    code = """
import logging, sys
import numpy as np
root_before = list(logging.getLogger().handlers)
import gpumeanshift, gpumeanshift.cli, gpumeanshift.plot
X = np.random.default_rng(0).normal(size=(60, 2))
gpumeanshift.MeanShift(bandwidth=0.5, backend="numpy", verbose=1).fit(X)
lg = logging.getLogger("gpumeanshift")
bad = [h for h in lg.handlers if not isinstance(h, logging.NullHandler)]
assert not bad, bad
assert logging.getLogger().handlers == root_before, logging.getLogger().handlers
assert lg.level == logging.NOTSET and lg.propagate
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    assert proc.stderr == ""  # INFO records without a handler go nowhere


def test_verbose_fit_logs_start_rounds_and_end(caplog):
    with caplog.at_level(logging.INFO, logger="gpumeanshift"):
        ms = gms.MeanShift(bandwidth=0.8, backend="numpy", verbose=1).fit(X)
    ours = [r for r in caplog.records if r.name == "gpumeanshift" and r.levelno == logging.INFO]
    messages = [r.getMessage() for r in ours]
    assert messages[0].startswith(f"fit: {len(X)} points x 2 features, {len(X)} seeds, bandwidth=0.8")
    rounds = [m for m in messages if m.startswith("shift: iteration")]
    assert rounds[0].startswith("shift: iteration 1 of at most 300, ")
    assert rounds[-1].endswith(f", 0 of {len(X)} seeds still moving")
    assert messages[-1].startswith(f"fit: {len(ms.cluster_centers_)} clusters from {len(X)} seeds "
                                   "(0 not converged)")


def test_verbose_true_is_verbose_1_and_default_is_silent(caplog):
    with caplog.at_level(logging.INFO, logger="gpumeanshift"):
        gms.MeanShift(bandwidth=0.8, backend="numpy").fit(X)
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]
    with caplog.at_level(logging.INFO, logger="gpumeanshift"):
        gms.mean_shift(X, bandwidth=0.8, backend="numpy", verbose=True)
    assert any(r.getMessage().startswith("shift: iteration") for r in caplog.records)


@pytest.mark.parametrize("verbose, error, match", [
    (-1, ValueError, "verbose must be >= 0, got -1"),
    ("yes", TypeError, "verbose must be an integer, got 'yes'"),
    (1.5, TypeError, "verbose must be an integer, got 1.5"),
])
def test_bad_verbose(verbose, error, match):
    with pytest.raises(error, match=match):
        gms.MeanShift(bandwidth=0.8, backend="numpy", verbose=verbose).fit(X)


def test_verbose_is_a_parameter():
    ms = gms.MeanShift(verbose=2)
    assert ms.get_params()["verbose"] == 2
    assert "verbose=2" in repr(ms)


# ------------------------------------------------------- the progress callback
@pytest.mark.parametrize("kernel", ["gaussian", "flat"])
@pytest.mark.parametrize("algorithm", ["brute", "grid"])
def test_numpy_progress_reports_each_iteration_and_the_seeds_still_moving(kernel, algorithm):
    rec = Recorder()
    res = NumpyBackend(n_threads=1).shift(X, X, bandwidth=0.8, kernel=kernel, max_iter=300,
                                          tol=1e-3, algorithm=algorithm, progress=rec)
    check_rounds(rec.calls, res.n_iter, 1, 300)


def test_numpy_progress_when_max_iter_stops_seeds():
    rec = Recorder()
    res = NumpyBackend(n_threads=1).shift(X, X, bandwidth=0.8, kernel="gaussian", max_iter=3,
                                          tol=1e-3, progress=rec)
    assert not np.asarray(res.converged).all()
    check_rounds(rec.calls, res.n_iter, 1, 3)
    assert rec.calls[-1] == (3, 0)


@pytest.mark.parametrize("split", [False, True])
def test_emulated_cuda_progress_reports_each_round(split):
    from gpumeanshift.testing import emulated_backend

    steps = 3
    opts = {"split": True, "n_splits": 2, "split_steps": steps} if split else {"split": False,
                                                                                 "iters_per_launch": steps}
    be = emulated_backend(**opts)
    rec = Recorder()
    seeds = X[::4]
    res = be.shift(X, seeds, bandwidth=0.8, kernel="flat", max_iter=300, tol=1e-3, progress=rec)
    assert be.last_plan["split"] is split
    assert len(rec.calls) == be.last_plan["rounds"] >= 2
    check_rounds(rec.calls, res.n_iter, steps, 300)


def test_driver_passes_progress_through_the_interface(caplog):
    """progress is part of Backend.shift: a verbose fit hands every backend
    a callable, a quiet one hands none (no signature probing)."""

    class Recording(NumpyBackend):
        seen = []

        def shift(self, X, seeds, *, progress=None, **kw):
            self.seen.append(progress)
            return super().shift(X, seeds, progress=progress, **kw)

    be = Recording(n_threads=1)
    with caplog.at_level(logging.INFO, logger="gpumeanshift"):
        ms = gms.MeanShift(bandwidth=0.8, backend=be, verbose=1).fit(X)
    gms.MeanShift(bandwidth=0.8, backend=be, verbose=0).fit(X)
    assert callable(be.seen[0]) and be.seen[1] is None
    ref = gms.MeanShift(bandwidth=0.8, backend="numpy").fit(X)
    np.testing.assert_array_equal(ms.labels_, ref.labels_)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("shift: iteration") for m in messages)
    assert messages[-1].startswith("fit: ")


# ----------------------------------------------------------------- the tqdm bar
def test_progress_bar_appears_after_the_delay(monkeypatch, capsys):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(_progress, "BAR_DELAY", 0.0)
    gms.MeanShift(bandwidth=0.8, backend="numpy", verbose=1).fit(X)
    err = capsys.readouterr().err
    assert "mean shift" in err
    assert f"of {len(X)} seeds moving" in err


def test_no_progress_bar_for_short_or_quiet_fits(monkeypatch, capsys):
    pytest.importorskip("tqdm")
    gms.MeanShift(bandwidth=0.8, backend="numpy", verbose=1).fit(X)  # far under 2 s
    monkeypatch.setattr(_progress, "BAR_DELAY", 0.0)
    gms.MeanShift(bandwidth=0.8, backend="numpy", verbose=0).fit(X)
    assert "mean shift" not in capsys.readouterr().err


def test_progress_bar_without_tqdm_is_silent(monkeypatch, capsys):
    monkeypatch.setattr(_progress, "BAR_DELAY", 0.0)
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm -> ImportError
    ms = gms.MeanShift(bandwidth=0.8, kernel="gaussian", backend="numpy", verbose=1).fit(X)
    assert len(ms.cluster_centers_) == 3
    assert "mean shift" not in capsys.readouterr().err


# ------------------------------------------------------------ ConvergenceWarning
def test_convergence_warning_from_the_emulated_cuda_backend():
    from gpumeanshift.testing import emulated_backend

    with pytest.warns(gms.ConvergenceWarning, match=r"of \d+ seeds did not converge within max_iter=1 "):
        gms.MeanShift(bandwidth=0.8, max_iter=1, backend=emulated_backend()).fit(X[::4])


def test_no_convergence_warning_when_every_seed_converges():
    with warnings.catch_warnings():
        warnings.simplefilter("error", gms.ConvergenceWarning)
        gms.MeanShift(bandwidth=0.8, backend="numpy").fit(X)


# ------------------------------------------------ the command line's terminal line
def test_the_progress_line_moves_within_a_round_of_the_shift_loop():
    """tile_done reports each batch of tiles: the bar moves before the first round ends."""
    from gpumeanshift._progress import ShiftProgress, TerminalProgress, terminal_progress

    events = []

    class Recording(TerminalProgress):
        def tile_done(self, k, total):
            super().tile_done(k, total)
            events.append(("tiles", self.line(elapsed=0.0)))

        def round_done(self, iteration, n_active):
            super().round_done(iteration, n_active)
            events.append(("round", iteration))

    gp = _progress
    rng = np.random.default_rng(1)
    data = rng.normal(size=(3000, 2))
    display = Recording(io.StringIO(), delay=1e9)
    gp._terminal = display
    try:
        progress = ShiftProgress(len(data), 300, log=False)
        NumpyBackend(n_threads=1).shift(data, data, bandwidth=0.5, kernel="gaussian", max_iter=300,
                                        tol=1e-3, progress=progress)
    finally:
        gp._terminal = None
    first_round = events.index(("round", 1))
    within = [line for kind, line in events[:first_round] if kind == "tiles"]
    assert len(within) >= 4, events[:10]
    percents = [int(re.search(r"\] +(\d+)% of 3,000 seeds", line).group(1)) for line in within]
    assert percents == sorted(percents) and 0 < percents[0] < 50 and percents[-1] == 100
    assert all(line.startswith("shift: iteration 1 (max 300)") for line in within)
    with terminal_progress(io.StringIO(), delay=1e9):
        assert gp.active()
    assert not gp.active()


def test_a_terminal_line_gets_the_fit_without_verbose_and_logs_nothing(caplog):
    from gpumeanshift._progress import terminal_progress

    with caplog.at_level(logging.INFO, logger="gpumeanshift"):
        with terminal_progress(io.StringIO(), delay=1e9) as line:
            gms.MeanShift(bandwidth=0.8, backend="numpy").fit(X)
            text = line.line(elapsed=0.0)
    # The fit is over: the line says so, in rounds of the loop.
    assert re.search(r"^shift: done after \d+ rounds, labelling, \d+ s$", text), text
    assert not [r for r in caplog.records if "shift: iteration" in r.getMessage()]


def test_progress_bar_moves_within_a_round(monkeypatch):
    """The tqdm bar of verbose fits advances per batch of tiles, not once per iteration."""
    pytest.importorskip("tqdm")
    monkeypatch.setattr(_progress, "BAR_DELAY", 0.0)
    progress = _progress.ShiftProgress(3000, 300, file=io.StringIO())
    seen = []
    real = progress.tile_done

    def tile_done(k, total):
        real(k, total)
        seen.append((progress.last[0], progress.bar.n))

    progress.tile_done = tile_done
    data = np.random.default_rng(1).normal(size=(3000, 2))
    NumpyBackend(n_threads=1).shift(data, data, bandwidth=0.5, kernel="gaussian", max_iter=300,
                                    tol=1e-3, progress=progress)
    progress.close()
    first_round = [n for it, n in seen if it == 0]
    assert len(first_round) >= 4
    assert first_round == sorted(first_round) and 0 < first_round[0] < 0.5
    assert first_round[-1] == pytest.approx(1.0)
