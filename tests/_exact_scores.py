"""Cluster scores from their definitions, accurate to a few units in the last place.

The reference the metric tests compare with. Distances are taken by
differences (no |x|^2 - 2 x.y + |y|^2 expansion, whose cancellation costs
digits), and every sum is ``math.fsum`` (correctly rounded), so each score is
within ~1e-15 relative of its exact value. scikit-learn's own scores are not
that accurate (its expanded distances are off by up to ~1e-8 for data far
from the origin), so it is compared at the tolerance it meets instead.
``decimal_silhouette`` recomputes the silhouette in 50-digit decimal
arithmetic, to check this reference itself on small data.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numpy as np


def _groups(labels):
    labels = np.asarray(labels)
    return [np.flatnonzero(labels == v) for v in np.unique(labels)]


def _dist(X, i, idx):
    diff = X[idx] - X[i]
    return np.sqrt(np.einsum("ij,ij->i", diff, diff))


def _mean(X, idx):
    return np.array([math.fsum(X[idx, j]) / len(idx) for j in range(X.shape[1])])


def silhouette_samples(X, labels):
    X = np.asarray(X, dtype=np.float64)
    groups = _groups(labels)
    owner = np.empty(len(X), dtype=np.int64)
    for g, idx in enumerate(groups):
        owner[idx] = g
    out = np.zeros(len(X))
    for i in range(len(X)):
        own = groups[owner[i]]
        if len(own) == 1:
            continue  # a singleton's silhouette is 0
        a = math.fsum(_dist(X, i, own)) / (len(own) - 1)
        b = min(math.fsum(_dist(X, i, idx)) / len(idx)
                for g, idx in enumerate(groups) if g != owner[i])
        out[i] = (b - a) / max(a, b)
    return out


def silhouette_score(X, labels):
    s = silhouette_samples(X, labels)
    return math.fsum(s) / len(s)


def davies_bouldin_score(X, labels):
    X = np.asarray(X, dtype=np.float64)
    groups = _groups(labels)
    cents = [_mean(X, idx) for idx in groups]
    spread = [math.fsum(np.sqrt(((X[idx] - c) ** 2).sum(axis=1))) / len(idx)
              for idx, c in zip(groups, cents)]
    worst = []
    for i, ci in enumerate(cents):
        ratios = [(spread[i] + spread[j]) / math.sqrt(math.fsum((ci - cj) ** 2))
                  for j, cj in enumerate(cents) if j != i and not np.array_equal(ci, cj)]
        worst.append(max(ratios, default=0.0))
    return math.fsum(worst) / len(worst)


def calinski_harabasz_score(X, labels):
    X = np.asarray(X, dtype=np.float64)
    groups = _groups(labels)
    n, k = len(X), len(groups)
    mean = _mean(X, np.arange(n))
    between, within = [], []
    for idx in groups:
        c = _mean(X, idx)
        between.append(len(idx) * math.fsum((c - mean) ** 2))
        within.extend(((X[idx] - c) ** 2).ravel())
    within = math.fsum(within)
    if within == 0:
        return 1.0
    return math.fsum(between) * (n - k) / (within * (k - 1))


def decimal_silhouette(X, labels, digits=50):
    """The silhouette score in ``digits``-digit decimal arithmetic (small data only)."""
    with localcontext() as ctx:
        ctx.prec = digits
        P = [[Decimal(float(v)) for v in row] for row in np.asarray(X, dtype=np.float64)]
        groups = [list(idx) for idx in _groups(labels)]
        owner = {i: g for g, idx in enumerate(groups) for i in idx}

        def dist(i, j):
            return sum(((a - b) ** 2 for a, b in zip(P[i], P[j])), Decimal(0)).sqrt()

        total = Decimal(0)
        for i in range(len(P)):
            own = groups[owner[i]]
            if len(own) == 1:
                continue
            a = sum((dist(i, j) for j in own), Decimal(0)) / (len(own) - 1)
            b = min(sum((dist(i, j) for j in idx), Decimal(0)) / len(idx)
                    for g, idx in enumerate(groups) if g != owner[i])
            total += (b - a) / max(a, b)
        return total / len(P)
