"""Coincident seeds: rows that stand for equal rows, and their leaders."""

from __future__ import annotations

import numpy as np


_HASH_MUL = np.uint64(0x9E3779B97F4A7C15)


def coincident_rows(P: np.ndarray) -> np.ndarray:
    """For each row of ``P``, the index of the row that stands for it.

    Rows with bitwise identical coordinates form a group; every member is
    mapped to one member of its group (rows alone in their group map to
    themselves). A shift step is a function of the seed's position only, so
    seeds at the same position share every later step: computing it once is
    exact. Under the flat kernel this is the common case (the mean of the
    same point set is the same number), and it cuts the work of a fit with
    every point as a seed several times over.

    Cost: a hash of the coordinate bits and one sort of the hashes.

    Parameters
    ----------
    P : ndarray of shape (m, d)
        Positions (float32 or float64).

    Returns
    -------
    rep : ndarray of shape (m,), int64
        ``rep[i]`` is the representative of row ``i``; ``rep[rep] == rep``.

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift._spatial import coincident_rows
    >>> coincident_rows(np.array([[0.0, 1.0], [2.0, 3.0], [0.0, 1.0]]))
    array([0, 1, 0])
    """
    P = np.ascontiguousarray(P)
    m, d = P.shape
    if m < 2:
        return np.arange(m, dtype=np.int64)
    bits = P.view(np.uint64 if P.dtype.itemsize == 8 else np.uint32).reshape(m, d)
    h = bits[:, 0].astype(np.uint64)
    for j in range(1, d):
        h *= _HASH_MUL  # wraps modulo 2**64, as a hash should
        h ^= bits[:, j]
    order = np.argsort(h, kind="stable")
    s = bits[order]
    # Equal rows have equal hashes, so each group is contiguous in `order`
    # unless a hash collision interleaves two groups: then a group is split
    # and its parts are simply not merged, which costs work, not exactness.
    start = np.empty(m, dtype=bool)
    start[0] = True
    np.any(s[1:] != s[:-1], axis=1, out=start[1:])
    first = np.flatnonzero(start)
    rep = np.empty(m, dtype=np.int64)
    rep[order] = order[first[np.cumsum(start) - 1]]
    return rep


def resolve_leaders(leader: np.ndarray) -> np.ndarray:
    """Follow ``leader`` pointers to their roots (``root[root] == root``).

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift._spatial import resolve_leaders
    >>> resolve_leaders(np.array([0, 0, 1, 3]))
    array([0, 0, 0, 3])
    """
    root = np.asarray(leader, dtype=np.int64)
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            return root
        root = nxt
