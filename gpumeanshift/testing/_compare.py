"""How the conformance suite compares a backend's results with the
references: each check returns the problems it found, as sentences."""

from __future__ import annotations

from typing import Callable

import numpy as np


class _Report:
    def __init__(self) -> None:
        self.failures: list[str] = []

    def run(self, method: str, case: str, fn: Callable[[], list[str]]) -> None:
        try:
            problems = fn()
        except Exception as exc:  # the backend raised: a failure of that method
            problems = [f"raised {type(exc).__name__}: {exc}"]
        self.failures += [f"{method} [{case}]: {p}" for p in problems]


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(np.asarray(mask).ravel())[0])


def _exact(name: str, got: np.ndarray, ref: np.ndarray, slack: float = 0) -> list[str]:
    """Integer-like arrays equal (within ``slack``)."""
    got, ref = np.asarray(got), np.asarray(ref)
    if got.shape != ref.shape:
        return [f"{name} has shape {got.shape}, expected {ref.shape}"]
    bad = np.abs(got.astype(np.float64) - ref.astype(np.float64)) > slack
    if bad.any():
        i = _first(bad)
        return [f"{name} differs at {int(bad.sum())} of {bad.size} entries "
                f"(first: entry {i}: {got.ravel()[i].item()!r}, "
                f"reference {ref.ravel()[i].item()!r})"]
    return []


def _close(name: str, got: np.ndarray, ref: np.ndarray, atol, rtol: float = 0.0) -> list[str]:
    got = np.asarray(got, dtype=np.float64)
    if got.shape != ref.shape:
        return [f"{name} has shape {got.shape}, expected {ref.shape}"]
    same_inf = np.isinf(ref) & (got == ref)
    with np.errstate(invalid="ignore"):
        bad = ~same_inf & ~(np.abs(got - ref) <= atol + rtol * np.abs(ref))
    if bad.any():
        i = _first(bad)
        err = np.abs(got - ref).ravel()[i]
        return [f"{name} differs at {int(bad.sum())} of {bad.size} values (first: index {i}: "
                f"{got.ravel()[i].item()!r}, reference {ref.ravel()[i].item()!r}, error {err:.3g})"]
    return []


def _count_bounds(D: np.ndarray, r: float, tol: dict,
                  scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Counts of points surely within ``r`` and possibly within it, given the
    dtype's rounding of distances (equal in float64)."""
    if tol["count"] == 0:
        c = np.count_nonzero(D <= r, axis=1)
        return c, c
    # rounding grows with the coordinates' size: the data's, or a far query's
    margin = tol["dist"] * (r + D.min(axis=1, keepdims=True) + scale)
    return np.count_nonzero(D <= r - margin, axis=1), np.count_nonzero(D <= r + margin, axis=1)


def _scale(X: np.ndarray) -> float:
    return float(np.abs(X.astype(np.float64)).max())


def _in_bounds(name: str, got: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> list[str]:
    got = np.asarray(got)
    if got.shape != lo.shape:
        return [f"{name} has shape {got.shape}, expected {lo.shape}"]
    bad = (got < lo) | (got > hi)
    if bad.any():
        i = _first(bad)
        want = f"{lo[i]}" if lo[i] == hi[i] else f"{lo[i]}..{hi[i]}"
        return [f"{name} differs at {int(bad.sum())} of {bad.size} queries "
                f"(first: query {i}: {got[i].item()!r}, reference {want})"]
    return []
