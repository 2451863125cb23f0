"""Results of the benchmarks of this session, for the ratio summary in conftest.py."""

from __future__ import annotations

import pytest

_RESULTS: dict[tuple[str, str], dict] = {}


def best_seconds(benchmark) -> float | None:
    """Fastest round of a finished benchmark (None when benchmarks are disabled)."""
    stats = getattr(benchmark, "stats", None)
    return None if stats is None else float(stats.stats.min)


def record(case: str, impl: str, **values) -> None:
    _RESULTS[(case, impl)] = values


def result(case: str, impl: str) -> dict | None:
    return _RESULTS.get((case, impl))


def check_target(request, met: bool, message: str) -> None:
    if not met and request.config.getoption("--bench-strict"):
        pytest.fail(f"target missed: {message}")
