"""``gpumeanshift cluster --weights COLUMN``, driven in a subprocess as a user does.

The reference is the repetition: the labels written for a weighted file are
those of the single-machine fit of ``np.repeat(X, w, axis=0)`` (each row
labelled as its copies), and the printed cluster sizes are summed weights.
"""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from gpumeanshift import MeanShift
from gpumeanshift.datasets import make_blobs
from gpumeanshift.io import load_model

X, _ = make_blobs(n_samples=120, centers=[[0, 0], [5, 5]], cluster_std=0.6, random_state=0)
W = np.random.default_rng(3).integers(0, 4, len(X))
BANDWIDTH = 1.5


def run(*args, cwd, stdin=None):
    env = dict(os.environ)
    env.pop("GPUMEANSHIFT_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "gpumeanshift", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120, input=stdin)


def write_csv(path, X, w, header=True, w_text=None):
    lines = ["x,w,y"] if header else []
    for i, (row, wi) in enumerate(zip(X, w)):
        weight = w_text[i] if w_text is not None else repr(float(wi))
        lines.append(f"{float(row[0])!r},{weight},{float(row[1])!r}")
    path.write_text("\n".join(lines) + "\n")
    return path


def labels_of(path):
    if str(path).endswith(".npy"):
        return np.load(path)
    return np.loadtxt(path, skiprows=1, dtype=np.int64)


def repeated_labels(**params):
    return MeanShift(backend="numpy", **params).fit(np.repeat(X, W, axis=0)).labels_


def assert_repeats(labels, **params):
    np.testing.assert_array_equal(np.repeat(labels, W), repeated_labels(**params))


@pytest.mark.parametrize("weights", ["w", "1"])
def test_csv_weights_by_name_or_index(tmp_path, weights):
    src = write_csv(tmp_path / "p.csv", X, W)
    proc = run("cluster", src, "--weights", weights, "--bandwidth", BANDWIDTH, "--backend",
               "numpy", "-o", tmp_path / "l.csv", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "(columns x, y)" in proc.stdout
    assert f"weights: column 'w', total {W.sum()}" in proc.stdout
    labels = labels_of(tmp_path / "l.csv")
    assert len(labels) == len(X)  # every row labelled, weight 0 too
    assert_repeats(labels, bandwidth=BANDWIDTH)
    # The printed sizes are the repeated counts.
    ref = MeanShift(backend="numpy", bandwidth=BANDWIDTH).fit(np.repeat(X, W, axis=0))
    for size in ref.cluster_sizes_:
        assert f"{size:>9,}" in proc.stdout


def test_npy_weights_by_index_and_estimated_bandwidth_with_bin_seeding(tmp_path):
    np.save(tmp_path / "p.npy", np.column_stack([W, X]))
    proc = run("cluster", "p.npy", "--weights", "0", "--bin-seeding", "--backend", "numpy",
               "-o", "l.npy", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_repeats(labels_of(tmp_path / "l.npy"), bandwidth=None, bin_seeding=True)


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="needs pyarrow")
def test_parquet_weights_by_name(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": X[:, 0], "count": W, "y": X[:, 1]}), tmp_path / "p.parquet")
    proc = run("cluster", "p.parquet", "--weights", "count", "--bandwidth", BANDWIDTH,
               "--kernel", "gaussian", "--backend", "numpy", "-o", "l.csv", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_repeats(labels_of(tmp_path / "l.csv"), bandwidth=BANDWIDTH, kernel="gaussian")


def test_weights_with_columns_and_stdin(tmp_path):
    text = write_csv(tmp_path / "p.csv", X, W).read_text()
    proc = run("cluster", "-", "--weights", "w", "--columns", "x,y", "--bandwidth", BANDWIDTH,
               "--backend", "numpy", "-o", "-", cwd=tmp_path, stdin=text)
    assert proc.returncode == 0, proc.stderr
    labels = np.array(proc.stdout.split()[1:], dtype=np.int64)
    assert_repeats(labels, bandwidth=BANDWIDTH)


def test_weights_with_standardize_and_model(tmp_path):
    src = write_csv(tmp_path / "p.csv", X, W)
    proc = run("cluster", src, "--weights", "w", "--standardize", "--bandwidth", "0.5",
               "--backend", "numpy", "-o", "l.csv", "--model", "m.npz", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    Xr = np.repeat(X, W, axis=0)
    Z = (Xr - Xr.mean(axis=0)) / Xr.std(axis=0)
    ref = MeanShift(backend="numpy", bandwidth=0.5).fit(Z)
    labels = labels_of(tmp_path / "l.csv")
    np.testing.assert_array_equal(np.repeat(labels, W), ref.labels_)
    model = load_model(tmp_path / "m.npz")
    np.testing.assert_allclose(model.estimator.cluster_centers_, ref.cluster_centers_, atol=1e-9)
    np.testing.assert_allclose(model.mean, Xr.mean(axis=0), rtol=1e-12)
    np.testing.assert_array_equal(model.estimator.cluster_sizes_, ref.cluster_sizes_)
    np.testing.assert_array_equal(model.predict(X), labels)


def test_fractional_weights_equal_their_scaled_integers(tmp_path):
    write_csv(tmp_path / "a.csv", X, W)
    write_csv(tmp_path / "b.csv", X, W * 0.25)
    for name in ("a", "b"):
        proc = run("cluster", f"{name}.csv", "--weights", "w", "--bandwidth", BANDWIDTH,
                   "--backend", "numpy", "-o", f"{name}.npy", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_help_describes_weights(tmp_path):
    out = run("cluster", "--help", cwd=tmp_path).stdout
    assert "--weights COLUMN" in out
    assert "repeated" in out


def bad_file(tmp_path, w_text):
    return write_csv(tmp_path / "bad.csv", X[:4], np.ones(4), w_text=w_text)


ERRORS = [
    (["--weights", "count"], None, 1, r"--weights column 'count': .*no column named 'count'"),
    (["--weights", "7"], None, 1, r"--weights column 7: .*column index 7 is out of range"),
    (["--weights", "w"], ["1", "abc", "1", "1"], 1,
     r"--weights column 'w': .*could not convert string 'abc'"),
    (["--weights", "w"], ["1", "1", "-2", "1"], 1,
     r"--weights column 'w': data row 3 has a negative weight \(-2\)"),
    (["--weights", "w"], ["1", "nan", "1", "1"], 1,
     r"--weights column 'w': .*data row 2 has a missing or non-finite value"),
    (["--weights", "w"], ["1", "inf", "1", "1"], 1,
     r"--weights column 'w': .*data row 2 has a missing or non-finite value"),
    (["--weights", "w"], ["0", "0", "0", "0"], 1, r"every weight is 0"),
    (["--weights", "w", "--columns", "x,w"], None, 2, r"'w' is also in --columns"),
    (["--weights", "1", "--columns", "0,1,2"], None, 2, r"is also in --columns"),
    (["--weights", "x,y"], None, 2, r"--weights takes one column"),
]


@pytest.mark.parametrize("args, w_text, code, pattern", ERRORS)
def test_weight_errors_one_line_no_outputs(tmp_path, args, w_text, code, pattern):
    src = bad_file(tmp_path, w_text or ["1"] * 4)
    proc = run("cluster", src, *args, "--bandwidth", "1", "--backend", "numpy",
               "-o", "l.csv", "--model", "m.npz", cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    err = proc.stderr.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith("gpumeanshift cluster: error: ")
    assert __import__("re").search(pattern, err), err
    assert not (tmp_path / "l.csv").exists() and not (tmp_path / "m.npz").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]  # no temporary left


def test_weights_as_the_only_column(tmp_path):
    (tmp_path / "w.csv").write_text("w\n1\n2\n")
    proc = run("cluster", "w.csv", "--weights", "w", "--bandwidth", "1", "-o", "l.csv",
               cwd=tmp_path)
    assert proc.returncode == 1
    assert "no features left" in proc.stderr
    assert not (tmp_path / "l.csv").exists()
