"""Region labelling of a filtered image: 4-connected components of similar
colour, small regions merged into their closest-coloured neighbour."""

from __future__ import annotations

import numpy as np

from ._checks import check_int, check_positive


def _connected_components(n, u, v):
    """Components of the graph on ``n`` nodes with edges (u, v), labelled by their smallest node.

    Vectorized union-find: every root hooks onto the smallest root it shares an
    edge with, then pointer jumping flattens the trees. Every unfinished root
    either hooks or is hooked onto, so the number of roots per component at
    least halves each round: O(log n) rounds of O(n + edges) work.
    """
    parent = np.arange(n, dtype=np.int64)
    while u.size:
        ru, rv = parent[u], parent[v]
        cross = ru != rv
        if not cross.any():
            break
        u, v, ru, rv = u[cross], v[cross], ru[cross], rv[cross]
        low = np.minimum(ru, rv)
        np.minimum.at(parent, ru, low)
        np.minimum.at(parent, rv, low)
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    return parent


def _grid_edges(h, w):
    idx = np.arange(h * w, dtype=np.int64).reshape(h, w)
    u = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    v = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    return u, v


def _consecutive(roots):
    """Relabel to 0..k-1, numbered in raster order of each region's first pixel."""
    _, first, inverse = np.unique(roots, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse.ravel()]


def label_regions(filtered, merge_radius, min_region_size=0):
    """Label 4-connected regions of similar colour, merging the small ones.

    Two 4-neighbours belong to one region when their colours differ by at most
    ``merge_radius`` (Euclidean). Then, while a region has fewer than
    ``min_region_size`` pixels, it joins the adjacent region with the closest
    mean colour (all small regions of a round at once).

    Parameters
    ----------
    filtered : array-like of shape (height, width) or (height, width, channels)
        Usually the output of :func:`mean_shift_filter`.
    merge_radius : float
        Largest colour distance between neighbours of one region.
    min_region_size : int, default=0
        Smallest region kept on its own (in pixels).

    Returns
    -------
    labels : ndarray of shape (height, width), int64
        Region index of each pixel, 0..k-1 in raster order of first pixels.

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift.segmentation import label_regions
    >>> img = np.array([[0, 0, 9, 9], [0, 0, 9, 9], [0, 5, 9, 9]], dtype=float)
    >>> label_regions(img, 1.0)
    array([[0, 0, 1, 1],
           [0, 0, 1, 1],
           [0, 2, 1, 1]])
    >>> label_regions(img, 1.0, min_region_size=2)
    array([[0, 0, 1, 1],
           [0, 0, 1, 1],
           [0, 1, 1, 1]])
    """
    img = np.asarray(filtered, dtype=np.float64)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3:
        raise ValueError(f"filtered must be 2-D or 3-D, got shape {img.shape}")
    merge_radius = check_positive(merge_radius, "merge_radius", 0.0)
    min_region_size = check_int(min_region_size, "min_region_size", 0)
    h, w, n_ch = img.shape
    flat = img.reshape(-1, n_ch)
    u, v = _grid_edges(h, w)
    close = ((flat[u] - flat[v]) ** 2).sum(axis=1) <= merge_radius**2
    labels = _consecutive(_connected_components(h * w, u[close], v[close]))
    while min_region_size > 1:
        k = int(labels.max()) + 1
        sizes = np.bincount(labels, minlength=k)
        small = sizes < min_region_size
        if k == 1 or not small.any():
            break
        means = np.stack([np.bincount(labels, weights=flat[:, c], minlength=k) for c in range(n_ch)],
                         axis=1) / sizes[:, None]
        lu, lv = labels[u], labels[v]
        diff = lu != lv
        a = np.concatenate([lu[diff], lv[diff]])
        b = np.concatenate([lv[diff], lu[diff]])
        keep = small[a]
        a, b = a[keep], b[keep]
        if a.size == 0:
            break  # small regions without neighbours: nothing to merge into
        dist = ((means[a] - means[b]) ** 2).sum(axis=1)
        # For every small region, its neighbour of closest mean colour (ties: lowest label).
        order = np.lexsort((b, dist, a))
        a, b = a[order], b[order]
        first = np.r_[True, a[1:] != a[:-1]]
        region_root = _connected_components(k, a[first], b[first])
        labels = _consecutive(region_root[labels])
    return labels.reshape(h, w)
