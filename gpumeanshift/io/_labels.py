"""Label files: one cluster label per point, as CSV or NPY."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._atomic import atomic_write

LABEL_SUFFIXES = (".csv", ".npy")


def write_labels(path, labels):
    """Write cluster labels to ``.csv`` (one column, header ``label``) or ``.npy``, atomically.

    Parameters
    ----------
    path : str, path-like or text file object
        Output file; the suffix picks the format. A file object (such as
        ``sys.stdout``) gets the CSV text, written directly.
    labels : array-like of int, shape (n_samples,)
        The labels.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from gpumeanshift.io import write_labels
    >>> path = os.path.join(tempfile.mkdtemp(), "labels.csv")
    >>> write_labels(path, np.array([0, 1, -1]))
    >>> open(path).read().split()
    ['label', '0', '1', '-1']
    """
    labels = np.asarray(labels).astype(np.int64, copy=False).ravel()
    if hasattr(path, "write"):
        _write_labels_csv(path, labels)
        return
    suffix = Path(path).suffix.lower()
    if suffix not in LABEL_SUFFIXES:
        raise ValueError(f"{path}: labels can be written to {' or '.join(LABEL_SUFFIXES)} files, not {suffix or '(no suffix)'!r}")
    if suffix == ".npy":
        with atomic_write(path, "wb") as f:
            np.save(f, labels, allow_pickle=False)
    else:
        with atomic_write(path, "w") as f:
            _write_labels_csv(f, labels)


def _write_labels_csv(f, labels) -> None:
    f.write("label\n")
    # In blocks: a reader that stops early (``| head``) stops the writing early.
    for a in range(0, labels.size, 65536):
        f.write("".join(f"{v}\n" for v in labels[a:a + 65536].tolist()))
