"""The ``demo``, ``cluster``, ``predict`` and ``segment`` commands, and the
bandwidth estimate and fit they share."""

from __future__ import annotations

import contextlib
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from ._args import AUTO_BANDWIDTH_MAX_SAMPLES, EXIT_OK, STDIO, _DataError
from ._input import _read, _read_weighted, reading
from ._output import (
    MAX_LISTED, _check_distinct, _check_writable, _cluster_table, _data_on_stdout, _fmt_names,
    _log_to_stderr, _plural, _progress_line, _require_matplotlib, _say, _shown, _write_plot,
)

DEMO_CENTERS = [[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]]


def _resolve_backend(name: str):
    from ..backends.base import resolve_backend

    try:
        return resolve_backend(name)
    except (ImportError, RuntimeError, OSError) as exc:
        raise _DataError(f"backend {name!r} cannot run here: {exc}") from None


def _fit(X, *, bandwidth, kernel, bin_seeding, backend, verbose=False, sample_weight=None):
    from .._estimator import MeanShift

    model = MeanShift(bandwidth=bandwidth, kernel=kernel, bin_seeding=bin_seeding, backend=backend,
                      verbose=int(verbose))
    logging_to_stderr = _log_to_stderr() if verbose else contextlib.nullcontext()
    with logging_to_stderr, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        try:
            model.fit(X, sample_weight=sample_weight)
        except (ValueError, TypeError) as exc:
            raise _DataError(f"clustering failed: {exc}") from None
        seconds = time.perf_counter() - t0
    for w in caught:
        print(f"gpumeanshift: warning: {w.message}", file=sys.stderr)
    return model, seconds


def _estimate(X, quantile: float, backend, *, n_samples=None, sample_weight=None):
    from ..bandwidth import estimate_bandwidth

    if n_samples is None and len(X) > AUTO_BANDWIDTH_MAX_SAMPLES:
        n_samples = AUTO_BANDWIDTH_MAX_SAMPLES
    t0 = time.perf_counter()
    try:
        h = estimate_bandwidth(X, quantile=quantile, n_samples=n_samples, random_state=0,
                               backend=backend, sample_weight=sample_weight)
    except (ValueError, TypeError) as exc:
        raise _DataError(f"bandwidth estimation failed: {exc}") from None
    seconds = time.perf_counter() - t0
    if h == 0.0:
        n = min(len(X), n_samples or len(X))
        raise _DataError(
            f"the estimated bandwidth (quantile {quantile}) is 0: the mean distance of "
            f"{'a sample of ' if n < len(X) else ''}{n:,} points to their "
            f"k = max(1, int({quantile} * {n})) = {max(1, int(quantile * n))} nearest neighbours "
            "(the point itself counted) is 0; give --bandwidth a number or a larger quantile"
        )
    return h, seconds


# --------------------------------------------------------------------------- commands
def _cmd_demo(args) -> int:
    from ..datasets import make_blobs

    if args.plot:
        _require_matplotlib()
        _check_writable(args.plot)
    be = _resolve_backend(args.backend)
    X, _ = make_blobs(n_samples=args.n_samples, centers=DEMO_CENTERS, cluster_std=0.6,
                      random_state=args.random_state)
    _say(f"data: {len(X):,} points in 2-D, 3 generated blobs centered at {DEMO_CENTERS} "
         f"(cluster_std=0.6, random_state={args.random_state})")
    with _progress_line() as progress:
        progress.phase("bandwidth estimate")
        h, t_bw = _estimate(X, 0.2, be, n_samples=500)
        model, seconds = _fit(X, bandwidth=h, kernel=args.kernel, bin_seeding=True,
                              backend=args.backend, verbose=args.verbose)
    _say(
        f"bandwidth: {h:.6g} (estimate_bandwidth, quantile=0.2, n_samples=500; {t_bw:.3f} s)",
        f"fit: MeanShift(kernel={args.kernel!r}, bin_seeding=True) on backend "
        f"{model.backend_!r} in {seconds:.3f} s ({_plural(model.n_iter_, 'iteration')})"
        + (" (a first GPU run includes compiling the kernels)" if model.backend_ != "numpy" else ""),
        f"clusters found: {len(model.cluster_centers_)}",
        *_cluster_table(model.cluster_centers_, model.cluster_sizes_),
    )
    if args.plot:
        _write_plot(args.plot, X, np.asarray(model.labels_), model.cluster_centers_,
                    f"gpumeanshift demo: {_plural(len(model.cluster_centers_), 'cluster')}, "
                    f"bandwidth {h:.3g}")
        _say(f"plot written to {args.plot}")
    return EXIT_OK


def _cmd_cluster(args) -> int:
    from ..io import save_model, write_labels

    _data_on_stdout(args.output == STDIO)
    if args.plot:
        _require_matplotlib()
    _check_distinct("cluster", [("FILE", args.file)],
                    [("--output", args.output), ("--model", args.model), ("--plot", args.plot)])
    _check_writable(args.output, args.model, args.plot)
    be = _resolve_backend(args.backend)
    weights = None
    if args.weights is None:
        X, names = _read(args.file, args.columns, args.format)
    else:
        X, names, weights, weight_name = _read_weighted(args.file, args.columns, args.weights,
                                                        args.format)
    _say(f"data: {X.shape[0]:,} points x {X.shape[1]} features from {_shown(args.file)}"
         + (f" (columns {_fmt_names(names)})" if names else ""))
    if weights is not None:
        _say(f"weights: column {weight_name}, total {math.fsum(weights):.6g}"
             + (f", {_plural(int((weights == 0).sum()), 'row')} of weight 0"
                if (weights == 0).any() else ""))
    mean = scale = None
    Xm = X
    if args.standardize:
        # Weighted: the mean and standard deviation of the repeated rows.
        mean = np.average(X, axis=0, weights=weights).astype(np.float64)
        std = np.sqrt(np.average((X.astype(np.float64) - mean) ** 2, axis=0, weights=weights))
        scale = np.where(std > 0, std, 1.0)  # constant columns stay as they are
        Xm = ((X.astype(np.float64) - mean) / scale).astype(X.dtype, copy=False)
        _say("standardized: every column to mean 0, standard deviation 1")
    kind, value = args.bandwidth
    with _progress_line() as progress:
        if kind == "quantile" and value == 0.3 and len(Xm) <= AUTO_BANDWIDTH_MAX_SAMPLES:
            # The library's own estimate (quantile 0.3 on every point), inside the
            # fit: whatever it does with the data, zero bandwidths included.
            bandwidth, how = None, "estimate_bandwidth, quantile=0.3, within the fit"
            progress.phase("bandwidth estimate")
        elif kind == "quantile":
            progress.phase("bandwidth estimate")
            bandwidth, t_bw = _estimate(Xm, value, be, sample_weight=weights)
            how = f"estimate_bandwidth, quantile={value}"
            if len(Xm) > AUTO_BANDWIDTH_MAX_SAMPLES:
                how += f", n_samples={AUTO_BANDWIDTH_MAX_SAMPLES}"
            if args.kernel == "gaussian":
                # The library's rule for an estimated bandwidth with this kernel.
                from .._driver import gaussian_from_flat

                bandwidth = gaussian_from_flat(bandwidth, Xm.shape[1])
                how += ", / sqrt(d + 2) for the Gaussian kernel"
            how += f"; {t_bw:.3f} s"
        elif kind == "rule":
            bandwidth, how = value, f"{value}'s rule"
        else:
            bandwidth, how = value, "given"
        model, seconds = _fit(Xm, verbose=args.verbose, bandwidth=bandwidth, kernel=args.kernel,
                              bin_seeding=args.bin_seeding, backend=args.backend,
                              sample_weight=weights)
    centers = np.asarray(model.cluster_centers_, dtype=np.float64)
    if mean is not None:
        centers = centers * scale + mean  # report centers in the file's units
    _say(
        f"bandwidth: {model.bandwidth_:.6g} ({how})"
        + (" in standardized units" if mean is not None else ""),
        f"fit: MeanShift(kernel={args.kernel!r}, bin_seeding={args.bin_seeding}) on backend "
        f"{model.backend_!r} in {seconds:.3f} s ({_plural(model.n_iter_, 'iteration')})",
        f"clusters found: {len(centers):,}" + (" (centers in the file's units)" if mean is not None else ""),
        *_cluster_table(centers, model.cluster_sizes_),
    )
    if args.output == STDIO:
        write_labels(sys.stdout, np.asarray(model.labels_))
    elif args.output:
        write_labels(args.output, np.asarray(model.labels_))
        _say(f"labels written to {args.output}")
    if args.model:
        save_model(model, args.model, mean=mean, scale=scale, columns=names)
        _say(f"model written to {args.model}")
    if args.plot:
        # Drawn in the units the bandwidth is in: standardized ones with --standardize.
        std_names = None
        if mean is not None:
            std_names = [f"{n} (standardized)" for n in (names or ["x0", "x1"])]
        name = "stdin" if args.file == STDIO else Path(args.file).name
        _write_plot(args.plot, Xm, np.asarray(model.labels_), model.cluster_centers_,
                    f"{name}: {_plural(len(centers), 'cluster')}, bandwidth {model.bandwidth_:.3g}"
                    + (" (standardized units)" if mean is not None else ""),
                    names=std_names or names)
        _say(f"plot written to {args.plot}")
    return EXIT_OK


def _cmd_predict(args) -> int:
    from ..io import load_model, read_column_names, write_labels

    _data_on_stdout(args.output == STDIO)
    _check_distinct("predict", [("MODEL", args.model), ("FILE", args.file)], [("--output", args.output)])
    _check_writable(args.output)
    _resolve_backend(args.backend)
    try:
        saved = load_model(args.model, backend=args.backend)
    except (ValueError, OSError) as exc:
        raise _DataError(str(exc)) from None
    columns = args.columns
    pick_model_columns = False
    if columns is None and saved.columns:
        if args.file == STDIO:
            pick_model_columns = True  # standard input is read once: choose after reading
        else:
            names = read_column_names(args.file) if args.format in (None, "csv", "tsv", "txt") else None
            if names and all(c in names for c in saved.columns):
                columns = saved.columns
    X, names = _read(args.file, columns, args.format)
    if pick_model_columns and names and all(c in names for c in saved.columns):
        X = np.ascontiguousarray(X[:, [names.index(c) for c in saved.columns]])
    d = saved.estimator.n_features_in_
    if X.shape[1] != d:
        raise _DataError(
            f"{_shown(args.file)} has {X.shape[1]} columns but the model was fitted on {d} features"
            + (f" ({_fmt_names(saved.columns)})" if saved.columns else "")
            + "; choose them with --columns"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            labels = saved.predict(X, outlier_threshold=args.outlier_threshold)
        except (ValueError, TypeError) as exc:
            raise _DataError(f"prediction failed: {exc}") from None
    for w in caught:
        print(f"gpumeanshift: warning: {w.message}", file=sys.stderr)
    if args.output is None:
        out = sys.stdout
        for a in range(0, len(labels), 65536):  # in blocks: '| head' stops it early
            out.write("".join(f"{v}\n" for v in labels[a:a + 65536].tolist()))
        return EXIT_OK
    write_labels(sys.stdout if args.output == STDIO else args.output, labels)
    k = len(saved.estimator.cluster_centers_)
    counts = np.bincount(labels[labels >= 0], minlength=k)
    _say(
        f"predicted: {len(labels):,} points from {_shown(args.file)} with {args.model} "
        f"({_plural(k, 'cluster')}, bandwidth {saved.estimator.bandwidth_:.6g}"
        + (", standardized" if saved.standardized else "") + ")",
        "points per cluster: " + ", ".join(f"{i}: {int(c):,}" for i, c in enumerate(counts[:MAX_LISTED]))
        + (f", ... ({k - MAX_LISTED} more)" if k > MAX_LISTED else ""),
    )
    if args.outlier_threshold is not None:
        _say(f"outliers (-1): {int((labels < 0).sum()):,}")
    if args.output != STDIO:
        _say(f"labels written to {args.output}")
    return EXIT_OK


def _cmd_segment(args) -> int:
    from ..io import check_image_writable, read_image, write_image
    from ..segmentation import segment_image

    src = Path(args.image)
    output = args.output or f"{src.stem}_filtered{'.npy' if src.suffix.lower() == '.npy' else '.png'}"
    labels_path = args.labels or f"{src.stem}_labels.npy"
    if args.plot:
        _require_matplotlib()
    _check_distinct("segment", [("IMAGE", args.image)],
                    [("--output", output), ("--labels", labels_path), ("--plot", args.plot)])
    _check_writable(output, labels_path, args.plot)
    with reading(src, text=False):
        image, note = read_image(src)
    try:
        # Checked before the work: the filtered image has the input's dtype and shape.
        check_image_writable(image, output)
    except ValueError as exc:
        raise _DataError(str(exc)) from None
    channels = 1 if image.ndim == 2 else image.shape[2]
    _say(f"image: {image.shape[1]} x {image.shape[0]} pixels, {channels} channel(s), {image.dtype} "
         f"from {src}" + (f" ({note})" if note else ""))
    t0 = time.perf_counter()
    try:
        filtered, labels = segment_image(
            image, args.spatial_radius, args.range_radius, color_space=args.color_space,
            min_region_size=args.min_region_size, max_iter=args.max_iter)
    except (ValueError, TypeError) as exc:
        raise _DataError(f"segmentation failed: {exc}") from None
    seconds = time.perf_counter() - t0
    n_regions = int(labels.max()) + 1 if labels.size else 0
    _say(f"segment: spatial radius {args.spatial_radius:g} px, range radius {args.range_radius:g} "
         f"({args.color_space}), min region size {args.min_region_size}, max_iter {args.max_iter} "
         f"in {seconds:.3f} s",
         f"regions found: {n_regions:,}")
    write_image(output, filtered)
    _say(f"filtered image written to {output}")
    write_image(labels_path, labels)
    _say(f"labels written to {labels_path}")
    if args.plot:
        from ..io import atomic_write
        from ..plot import plot_segmentation

        fig = plot_segmentation(image, filtered, labels)
        with atomic_write(args.plot, "wb") as f:
            fig.savefig(f, format=Path(args.plot).suffix.lower().lstrip("."), dpi=100)
        _say(f"plot written to {args.plot}")
    return EXIT_OK
