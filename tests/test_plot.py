"""Plots: each renders to a non-empty PNG of the expected pixel size, read back with matplotlib."""

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")
import matplotlib.image  # noqa: E402

from gpumeanshift import MeanShift  # noqa: E402
from gpumeanshift.plot import (  # noqa: E402
    plot_bandwidth_sweep,
    plot_clusters,
    plot_segmentation,
    project_2d,
)
from gpumeanshift.segmentation import segment_image  # noqa: E402
from gpumeanshift.selection import bandwidth_sweep  # noqa: E402

rng = np.random.default_rng(0)
CENTERS = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 4.0, -1.0]])
X3 = np.concatenate([rng.normal(c, 0.4, size=(60, 3)) for c in CENTERS])


def render(fig, path, dpi=100):
    fig.savefig(path, format="png", dpi=dpi)
    return matplotlib.image.imread(path)


def assert_drawn(img, width, height):
    """The expected size, and not one flat colour (something was drawn)."""
    assert img.shape[:2] == (height, width)
    assert img.shape[2] in (3, 4)
    rgb = img[..., :3]
    assert np.ptp(rgb) > 0.5
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 10


@pytest.mark.parametrize("d", [1, 2, 3])
def test_plot_clusters_renders_a_640x480_png(tmp_path, d):
    X = np.ascontiguousarray(X3[:, :d])
    ms = MeanShift(bandwidth=1.5, backend="numpy").fit(X)
    fig = plot_clusters(X, ms.labels_, ms.cluster_centers_, title="t")
    assert_drawn(render(fig, tmp_path / "c.png"), 640, 480)
    ax = fig.axes[0]
    expected_x = {1: "x0", 2: "x0", 3: "principal axis 1"}[d]
    assert ax.get_xlabel() == expected_x
    # One scatter for the points, one for the centers.
    assert [len(c.get_offsets()) for c in ax.collections] == [len(X), len(ms.cluster_centers_)]


def test_plot_clusters_draws_on_a_given_axes(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2), dpi=100)
    ax = fig.add_subplot()
    ms = MeanShift(bandwidth=1.5, backend="numpy").fit(X3)
    assert plot_clusters(X3, ms.labels_, ms.cluster_centers_, ax=ax) is fig
    assert_drawn(render(fig, tmp_path / "c.png"), 300, 200)


def test_plot_clusters_outliers_are_grey_and_points_are_capped():
    X = X3[:, :2]
    labels = np.zeros(len(X), dtype=int)
    labels[:5] = -1
    fig = plot_clusters(X, labels, CENTERS[:, :2], max_points=100)
    colors = fig.axes[0].collections[0].get_facecolors()
    assert len(fig.axes[0].collections[0].get_offsets()) == 100
    grey = np.all(np.isclose(colors[:, :3], 0.6), axis=1)
    assert 0 < grey.sum() <= 5


def test_project_2d_equals_a_float64_pca_reference():
    P, C, _ = project_2d(X3, CENTERS)
    mu = X3.mean(axis=0)
    cov = np.cov((X3 - mu).T)
    w, v = np.linalg.eigh(cov)
    axes = v[:, np.argsort(w)[::-1][:2]]
    ref = (X3 - mu) @ axes
    # Principal axes are defined up to sign.
    signs = np.sign(np.sum(P * ref, axis=0))
    np.testing.assert_allclose(P, ref * signs, atol=1e-10)
    np.testing.assert_allclose(C, ((CENTERS - mu) @ axes) * signs, atol=1e-10)


@pytest.mark.parametrize("args, error, match", [
    ((X3, np.zeros(3), CENTERS), ValueError, "labels has 3 entries but X has 180 rows"),
    ((X3[0], np.zeros(3), CENTERS), ValueError, "X must be 2-D"),
    ((X3, np.zeros(180), CENTERS[:, :2]), ValueError, "same number of columns"),
])
def test_plot_clusters_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        plot_clusters(*args)


def test_plot_bandwidth_sweep_renders_a_1200x320_png(tmp_path):
    X = X3[:, :2]
    sweep = bandwidth_sweep(X, [0.5, 1.5, 6.0], backend="numpy")
    fig = plot_bandwidth_sweep(sweep)
    assert_drawn(render(fig, tmp_path / "s.png"), 1200, 320)
    assert len(fig.axes) == 4


def test_plot_segmentation_renders_a_1200x400_png(tmp_path):
    img = np.zeros((30, 40, 3), dtype=np.uint8)
    img[:, 20:] = (200, 40, 40)
    filtered, labels = segment_image(img, 3, 20)
    fig = plot_segmentation(img, filtered, labels)
    assert_drawn(render(fig, tmp_path / "g.png"), 1200, 400)
    assert [a.get_title() for a in fig.axes] == ["original", "filtered", "2 regions"]


def test_plot_module_does_not_import_matplotlib():
    code = ("import sys, gpumeanshift.plot; "
            "sys.exit(int(any(m.split('.')[0] == 'matplotlib' for m in sys.modules)))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_many_center_markers_do_not_cover_the_data():
    pytest.importorskip("matplotlib")
    from gpumeanshift.plot import plot_clusters

    rng = np.random.default_rng(0)
    Xp = rng.uniform(size=(5000, 2))

    def crosses(k):
        fig = plot_clusters(Xp, np.arange(5000) % k, Xp[:k])
        coll = fig.axes[0].collections[1]
        return float(np.max(coll.get_sizes())), float(np.max(coll.get_linewidths()))

    assert crosses(3) == (80.0, 2.0)  # a few clusters: as before
    size, width = crosses(1000)
    # The crosses' total area stays that of 20 large ones, at a floor of 4 points^2 each.
    assert size * 1000 <= max(20 * 80, 4 * 1000) and width <= 0.5
