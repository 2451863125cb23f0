"""Shared data, result bookkeeping and the ratio summary of the benchmark suite.

Every benchmark records its best time (``min`` over rounds: on a shared,
noisy machine the fastest round is the least disturbed one) under a case
name; at the end of the session the terminal summary prints, per case,
gpumeanshift vs scikit-learn as a ratio against the target of issue 2.
``--bench-strict`` turns a missed target into a failing test.
"""

from __future__ import annotations

import pytest

import _cases
import _machine
from _record import _RESULTS


def pytest_addoption(parser):
    parser.addoption("--bench-strict", action="store_true", default=False,
                     help="fail a benchmark whose target of issue 2 is not met")


@pytest.fixture(scope="session")
def all_seeds_data():
    return _cases.blobs_and_bandwidth(_cases.N_ALL_SEEDS)


@pytest.fixture(scope="session")
def bin_seeding_data():
    return _cases.blobs_and_bandwidth(_cases.N_BIN_SEEDING)


@pytest.fixture(scope="session")
def sklearn_reference():
    """scikit-learn's fitted estimator per case, filled by its benchmark (or lazily)."""
    return {}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _RESULTS:
        return
    tr = terminalreporter
    tr.write_sep("=", "gpumeanshift vs scikit-learn (best round of each)")
    info = _machine.machine_info()
    tr.write_line(", ".join(f"{k}: {v}" for k, v in info.items()))
    for (case, impl), v in sorted(_RESULTS.items()):
        parts = [f"{case:<28} {impl:<34}"]
        if v.get("seconds") is not None:
            parts.append(f"{v['seconds']:9.4f} s")
        for key in ("ratio", "pairs_per_s", "peak_rss_mb"):
            if v.get(key) is not None:
                fmt = {"ratio": "{:8.2f}x vs " + v.get("peer", "sklearn"),
                       "pairs_per_s": "{:10.3e} pairs/s",
                       "peak_rss_mb": "peak RSS {:7.0f} MB"}[key]
                parts.append(fmt.format(v[key]))
        if v.get("target"):
            parts.append(f"target {v['target']}: {'met' if v['met'] else 'NOT met'}")
        tr.write_line("  ".join(parts))


def pytest_collect_file(file_path, parent):
    # The project's python_files is test_*.py; collect bench_*.py here too so
    # that ``pytest bench/`` finds them (files named on the command line are
    # already collected by pytest itself).
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and not parent.session.isinitpath(file_path)):
        return pytest.Module.from_parent(parent, path=file_path)
