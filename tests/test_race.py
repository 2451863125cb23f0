"""The speed race (bench/race.py): it runs, checks, fits; the package ships none of it.

No timing is asserted here; the race's numbers are its output, not its tests.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
# The race lives in bench/, beside the case definitions it shares (appended:
# bench/ has a conftest.py of its own).
sys.path.append(str(ROOT / "bench"))

import _cases  # noqa: E402
import _race_report  # noqa: E402
import race  # noqa: E402
from _cases import DATASETS, check_agreement, hotspot  # noqa: E402
from _race_report import Run, fit_exponent, format_exponents, format_table  # noqa: E402
from race import METHODS, run_race, sizes_for  # noqa: E402

pytest.importorskip("sklearn")
EXPECTED_METHODS = [m for m in METHODS if m != "cuda" or race._available_methods(["cuda"])]


@pytest.mark.parametrize("module", [race, _race_report, _cases], ids=lambda m: m.__name__)
def test_bench_docstring_examples(module):
    """The examples in the race's modules run (bench/ is outside the doctest paths)."""
    import doctest

    failed, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failed == 0


@pytest.fixture(scope="module")
def tiny_runs():
    return run_race(max_n=1000, datasets=["blobs-2d", "blobs-16d"], budget=math.inf)


def test_tiny_race_runs_every_method(tiny_runs):
    assert [r.method for r in tiny_runs if r.dataset == "blobs-2d"] == EXPECTED_METHODS
    table = format_table(tiny_runs)
    for method in EXPECTED_METHODS:
        assert f"| {method} |" in table
    for r in tiny_runs:
        if r.method == "numpy-grid" and r.dataset == "blobs-16d":
            assert r.skipped.startswith("n/a")
            continue
        assert r.seconds > 0 and r.agrees is True, r
        assert r.n_clusters >= 2


def test_tiny_race_matches_sklearn_itself(tiny_runs):
    """The reference really is scikit-learn's result: compare independently."""
    from sklearn.cluster import MeanShift

    ds = DATASETS["blobs-2d"]
    X = ds.make(1000, 0)
    ref = MeanShift(bandwidth=ds.bandwidth, bin_seeding=True).fit(X).cluster_centers_
    for r in tiny_runs:
        if r.dataset == "blobs-2d":
            ok, detail = check_agreement(r.centers, ref, 1e-9)
            assert ok, (r.method, detail)


def test_exponent_table_has_every_method(tiny_runs):
    text = format_exponents(tiny_runs)
    for method in EXPECTED_METHODS:
        assert method in text.splitlines()[0]


def test_sklearn_extrapolated_from_seed_subsets():
    runs = run_race(max_n=1000, datasets=["hotspot"], methods=["sklearn", "numpy-grid"],
                    budget=1e-3)
    sk, grid = runs
    assert sk.extrapolated and sk.seconds > 0
    assert "seeds" in grid.agreement and grid.agrees is True
    table = format_table(runs)
    assert "*" in table and "extrapolated" in table


def test_own_methods_skipped_past_budget():
    runs = run_race(max_n=3000, datasets=["blobs-2d"], methods=["numpy-brute"], budget=1e-9)
    assert [r.n for r in runs] == [1000, 3000]
    assert not runs[0].skipped and runs[1].skipped.startswith("skipped")
    assert "skipped" in format_table(runs)


# ------------------------------------------------------------- the agreement check
def test_agreement_fails_on_mismatch():
    A = np.array([[0.0, 0.0], [10.0, 0.0]])
    assert check_agreement(A, A[::-1], 1e-12)[0]
    ok, detail = check_agreement(A, A[:1], 1e-6)
    assert not ok and "2 centers vs 1" in detail
    ok, detail = check_agreement(A + [[0.0, 1e-3], [0.0, 0.0]], A, 1e-6)
    assert not ok and "away" in detail
    ok, detail = check_agreement(np.array([[0.0, 0.0], [0.1, 0.0]]), A, 1.0)
    assert not ok and "one-to-one" in detail


def test_race_reports_a_method_that_disagrees(monkeypatch, capsys):
    """A method whose centers are off is marked NO and the command exits 1."""
    real = race._ours

    def wrong(method, *args, **kw):
        fit = real(method, *args, **kw)
        if method == "numpy-grid":
            return lambda: fit() + 0.5
        return fit

    monkeypatch.setattr(race, "_ours", wrong)
    runs = run_race(max_n=1000, datasets=["blobs-2d"], methods=["numpy-brute", "numpy-grid"])
    assert [r.agrees for r in runs] == [True, False]
    assert "| NO (" in format_table(runs)
    code = race.main(["--max-n", "1000", "--datasets", "blobs-2d",
                      "--methods", "numpy-brute,numpy-grid"])
    assert code == 1
    assert "did NOT find the same clusters" in capsys.readouterr().out


# ----------------------------------------------------------------- exponent fit
@pytest.mark.parametrize("k", [1.0, 1.37, 2.0])
def test_fit_exponent_recovers_known_exponent(k):
    rng = np.random.default_rng(0)
    ns = np.array([1e3, 3e3, 1e4, 3e4, 1e5])
    ts = 2e-7 * ns**k * np.exp(rng.normal(scale=0.01, size=ns.size))
    assert fit_exponent(ns, ts) == pytest.approx(k, abs=0.03)


def test_fit_exponent_needs_two_sizes():
    assert math.isnan(fit_exponent([1000], [1.0]))
    assert math.isnan(fit_exponent([1000, 1000], [1.0, 2.0]))


# ---------------------------------------------------------------- data and input
def test_hotspot_keeps_density():
    for n in (1000, 4000, 16000):
        X = hotspot(n)
        side = 1000.0 * math.sqrt(n / 1e6)
        assert X.shape == (n, 2)
        assert np.all(X > -8) and np.all(X < side + 8)
    # Same number of points per unit area: the spread grows like sqrt(n).
    assert np.ptp(hotspot(16000)[:, 0]) > 2.5 * np.ptp(hotspot(1000)[:, 0])


def test_sizes_ladder():
    assert sizes_for(DATASETS["hotspot"], 10_000) == [1000, 3000, 10000]
    assert sizes_for(DATASETS["digits"], 3000) == [1000, 1797]
    assert sizes_for(DATASETS["digits"], 1000) == [1000]


def test_bad_names_rejected():
    with pytest.raises(ValueError, match="unknown methods"):
        run_race(methods=["numpy-fast"])
    with pytest.raises(ValueError, match="unknown dataset"):
        run_race(datasets=["nope"])


def test_format_table_marks_extrapolated_and_ratios():
    runs = [Run("a", 1000, 2, 1000, "sklearn", 10.0, 3, extrapolated=True),
            Run("a", 1000, 2, 1000, "numpy-grid", 0.1, 3, agrees=True)]
    table = format_table(runs)
    assert "10.000*" in table and "100x*" in table and "| 3* |" in table


def test_cuda_method_on_emulated_runtime(monkeypatch):
    """The race's CUDA path (table row, agreement) on the kernels run by the CPU emulator."""
    from gpumeanshift.backends.cuda.backend import CudaBackend
    from gpumeanshift.testing import EmulatedRuntime

    monkeypatch.setenv("OMP_WAIT_POLICY", "passive")
    monkeypatch.setattr(race, "CUDA_BACKEND", CudaBackend(EmulatedRuntime()))
    monkeypatch.setattr(race, "_available_methods", lambda methods: list(methods))
    runs = run_race(max_n=1000, datasets=["blobs-2d"], methods=["numpy-brute", "cuda"])
    assert [r.method for r in runs] == ["numpy-brute", "cuda"]
    assert runs[1].agrees is True, runs[1].agreement
    assert "| cuda |" in format_table(runs)


# ----------------------------------------------------------------------- CLI
def _run(*args, cwd):
    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_script_writes_png_and_markdown(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "race.png"
    md = tmp_path / "race.md"
    proc = _run(str(ROOT / "bench" / "race.py"), "--max-n", "1000", "--datasets", "blobs-2d",
                "--plot", str(png), "--markdown", str(md), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for method in ("sklearn", "numpy-brute", "numpy-grid"):
        assert f"| {method} |" in proc.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "numpy-grid" in md.read_text()


def test_script_help_and_bad_options(tmp_path):
    script = str(ROOT / "bench" / "race.py")
    proc = _run(script, "--help", cwd=tmp_path)
    assert proc.returncode == 0 and "--max-n" in proc.stdout
    proc = _run(script, "--plot", "race.txt", cwd=tmp_path)
    assert proc.returncode == 2 and "--plot must end in" in proc.stderr
    proc = _run(script, "--methods", "turbo", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown name" in proc.stderr


def test_bench_script_runs(tmp_path):
    proc = _run(str(ROOT / "bench" / "race.py"), "--max-n", "1000", "--datasets", "hotspot",
                "--methods", "numpy-brute,numpy-grid", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "| hotspot | 1000 |" in proc.stdout


def test_package_ships_no_race(tmp_path):
    """The installed package neither contains the race nor offers it as a command."""
    import gpumeanshift

    assert not (Path(gpumeanshift.__file__).parent / "race.py").exists()
    proc = _run("-m", "gpumeanshift", "--help", cwd=tmp_path)
    assert proc.returncode == 0 and "segment" in proc.stdout
    assert "bench" not in proc.stdout and "race" not in proc.stdout
    proc = _run("-m", "gpumeanshift", "bench", cwd=tmp_path)
    assert proc.returncode == 2 and "invalid choice: 'bench'" in proc.stderr
