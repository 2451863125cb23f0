"""Arithmetic the backends need exact: column extremes, integer detection,
boundary decisions, midranges, powers of two and overflow-safe distances."""

from __future__ import annotations

import numpy as np

#: Largest coordinate magnitude (after centering) for which the expanded
#: squared distance |q|^2 + |x|^2 - 2 q.x cannot overflow the dtype, with room
#: for a sum over 2**20 features; beyond it the backends switch to an overflow-
#: safe path (exact power-of-two scaling, or differences).
SAFE_ABS = {
    np.dtype(np.float64): 2.0**450,
    np.dtype(np.float32): 2.0**50,
}


def col_min(A: np.ndarray) -> np.ndarray:
    """``A.min(axis=0)`` for a 2-D NumPy array, computed column by column.

    NumPy reduces a tall, narrow C-ordered array along axis 0 one row at a
    time (an inner loop as long as a row): measured 30x slower than reducing
    each column for 100,000 x 2. Same result, same errors (an empty ``A``
    raises).

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift._spatial import col_min, col_max
    >>> A = np.array([[1.0, -2.0], [3.0, 5.0]])
    >>> col_min(A).tolist(), col_max(A).tolist()
    ([1.0, -2.0], [3.0, 5.0])
    """
    return _by_column(np.minimum.reduce, A)


def col_max(A: np.ndarray) -> np.ndarray:
    """``A.max(axis=0)`` for a 2-D NumPy array; see :func:`col_min`."""
    return _by_column(np.maximum.reduce, A)


def _by_column(reduce, A):
    A = np.asarray(A)
    n, d = A.shape
    if n <= 8 * d or A.flags.f_contiguous:
        return reduce(A, axis=0)
    return np.array([reduce(A[:, j]) for j in range(d)], dtype=A.dtype)


def integer_valued(X, xp=np) -> bool:
    """True for 2-D float64 data whose every value is an integer, with
    ``n * max|x| < 2**53`` (sums over all rows exact in any order): the data
    on which both backends decide flat-kernel boundary ties as scikit-learn
    does. NumPy arrays are checked on the host; device arrays cost one
    1-byte device-to-host read.

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift._spatial import integer_valued
    >>> integer_valued(np.array([[1.0, 2.0], [3.0, -4.0]])), integer_valued(np.array([[0.5]]))
    (True, False)
    """
    if getattr(X, "dtype", None) != np.float64 or X.ndim != 2 or not X.size:
        return False
    if isinstance(X, np.ndarray):
        xp = np
    ok = (xp.abs(X).max() < 2.0**53 / len(X)) & xp.all(X == xp.round(X))
    return bool(ok)


def within_exact(C, Q, h: float, xp=np):
    """``sum_j (c_j - q_j)^2 <= h * h`` for paired rows of float64 ``C`` and
    ``Q``, the features summed in order: the test scikit-learn's ball tree
    makes (on squared distances: at (1.6, 1, 0.2) the point (1, 1, 1) is
    out, though the square root of its rounded sum, 1 + 2**-52, rounds to 1).
    The exact side of flat-kernel boundary ties on integer data, for every
    backend; ``xp`` is the array module of ``C`` and ``Q``.

    Examples
    --------
    >>> import numpy as np
    >>> within_exact(np.array([[1.0, 1.0, 1.0]]), np.array([[1.6, 1.0, 0.2]]), 1.0)
    array([False])
    """
    acc = xp.zeros(C.shape[0], dtype=np.float64)
    for j in range(C.shape[1]):
        diff = C[:, j] - Q[:, j]
        acc += diff * diff
    return acc <= h * h


def midrange(X, xp=np):
    """Per-feature centre ``(min + max) / 2`` in float64, computed without overflow.

    The backends centre the data on it before any arithmetic. Unlike the
    mean it never overflows (``min + (max/2 - min/2)``), is exactly the point
    for identical rows (so identical points at -1e300 have residual 0, not the
    rounding error of a mean), and does not depend on the row order.

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift._spatial import midrange
    >>> c = midrange(np.array([[-1e308, 2.0], [1.7e308, 4.0]]))
    >>> round(float(c[0] / 1e307), 9), float(c[1])
    (3.5, 3.0)
    """
    if xp is np:
        lo, hi = col_min(X), col_max(X)
    else:
        lo, hi = X.min(axis=0), X.max(axis=0)
    lo = lo.astype(np.float64)
    hi = hi.astype(np.float64)
    return lo + (hi * 0.5 - lo * 0.5)


def pow2_at_least(x: float) -> float:
    """The smallest power of two >= ``x`` (``x`` > 0, finite): dividing by it is exact
    (short of underflow) and brings ``x`` into (0.5, 1]. Past 2**1023 (the
    largest power of two float64 holds) it is 2**1023, which brings ``x``
    into (1, 2).

    Examples
    --------
    >>> from gpumeanshift._spatial import pow2_at_least
    >>> pow2_at_least(3.0), pow2_at_least(4.0), pow2_at_least(1e-300) < 1e-299
    (4.0, 4.0, True)
    >>> pow2_at_least(1.5e308) == 2.0 ** 1023
    True
    """
    mant, exp = np.frexp(float(x))
    return float(np.ldexp(1.0, min(int(exp) - (1 if mant == 0.5 else 0), 1023)))


def robust_norm(diff: np.ndarray) -> np.ndarray:
    """Euclidean norm of each row of ``diff`` (float64) without overflow or underflow.

    Each row is divided by a power of two near its largest entry before
    squaring (exact), so 1e200 and 1e-300 components give 1e200 and 1e-300,
    not inf and 0. A norm beyond float64's range comes back as inf.

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift._spatial import robust_norm
    >>> n = robust_norm(np.array([[3e200, 4e200], [3e-300, 4e-300], [0.0, 0.0]]))
    >>> (n / [1e200, 1e-300, 1]).round(12).tolist()
    [5.0, 5.0, 0.0]
    """
    diff = np.asarray(diff, dtype=np.float64)
    top = np.abs(diff).max(axis=1) if diff.shape[1] else np.zeros(len(diff))
    _, exp = np.frexp(top)
    scale = np.ldexp(1.0, exp - 1)  # a power of two in (top/2, top] (0.5 for top == 0)
    u = diff / scale[:, None]
    with np.errstate(over="ignore"):
        return np.sqrt(np.einsum("ij,ij->i", u, u)) * scale


def pair_distance(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``|A[i] - B[i]|`` for paired rows, in float64, by differences, overflow-safe.

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift._spatial import pair_distance
    >>> pair_distance(np.array([[1.7e308]]), np.array([[-1.7e308]])).tolist()
    [inf]
    >>> pair_distance(np.array([[0.0, 1e-300]]), np.array([[0.0, 0.0]])).tolist()
    [1e-300]
    """
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        diff = A - B
    bad = ~np.isfinite(diff).all(axis=1)
    if not bad.any():
        return robust_norm(diff)
    # |a - b| past float64's range: halve first (exact for normal numbers).
    half = A[bad] * 0.5 - B[bad] * 0.5
    diff[bad] = 0.0
    out = robust_norm(diff)
    with np.errstate(over="ignore"):
        out[bad] = robust_norm(half) * 2.0
    return out
