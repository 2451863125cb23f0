"""Saved models, point files and label files (gpumeanshift.io)."""

import json
import os
import stat
import sys

import numpy as np
import pytest

from gpumeanshift import MeanShift
from gpumeanshift.datasets import make_blobs
from gpumeanshift.io import (
    FORMAT_VERSION,
    atomic_write,
    load_model,
    read_column_names,
    read_points,
    save_model,
    write_labels,
)

X, _ = make_blobs(n_samples=240, centers=[[0, 0], [4, 4], [0, 4]], cluster_std=0.5, random_state=0)


@pytest.fixture(scope="module")
def fitted():
    return MeanShift(bandwidth=1.0, kernel="flat", bin_seeding=True, backend="numpy").fit(X)


def _arrays(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _rewrite(path, out, *, header=None, drop=(), **arrays):
    """Copy a model file with parts of its header or arrays replaced."""
    data = _arrays(path)
    h = json.loads(data["header"].tobytes())
    h.update(header or {})
    data["header"] = np.frombuffer(json.dumps(h).encode(), dtype=np.uint8)
    data.update(arrays)
    for key in drop:
        data.pop(key)
    np.savez(out, **data)
    return out


# ---------------------------------------------------------------- save / load
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_model_round_trip_keeps_centers_params_and_predictions(tmp_path, dtype):
    Xd = X.astype(dtype)
    ms = MeanShift(bandwidth=1.0, kernel="flat", bin_seeding=True, backend="numpy").fit(Xd)
    path = tmp_path / "model.npz"
    save_model(ms, path)
    m = load_model(path)
    est = m.estimator
    assert est.cluster_centers_.dtype == dtype
    np.testing.assert_array_equal(est.cluster_centers_, ms.cluster_centers_)
    np.testing.assert_array_equal(est.cluster_sizes_, ms.cluster_sizes_)
    assert est.bandwidth_ == ms.bandwidth_
    assert est.n_features_in_ == 2
    assert est.n_iter_ == ms.n_iter_
    assert est.backend_ == "numpy"
    assert est.kernel == "flat" and est.bin_seeding is True
    assert m.format_version == FORMAT_VERSION and m.library_version
    assert not m.standardized and m.mean is None and m.columns is None
    new = np.array([[0.1, 0.2], [3.9, 4.2], [20.0, 20.0]], dtype=dtype)
    np.testing.assert_array_equal(est.predict(new), ms.predict(new))
    np.testing.assert_array_equal(
        m.predict(new, outlier_threshold="bandwidth"), ms.predict(new, outlier_threshold="bandwidth")
    )


def test_model_round_trip_with_standardization_and_columns(tmp_path):
    mean, scale = X.mean(axis=0), X.std(axis=0)
    Xs = (X - mean) / scale
    ms = MeanShift(bandwidth=0.5, backend="numpy").fit(Xs)
    path = tmp_path / "model.npz"
    save_model(ms, path, mean=mean, scale=scale, columns=["x", "y"])
    m = load_model(path)
    assert m.standardized and m.columns == ["x", "y"]
    np.testing.assert_array_equal(m.mean, mean)
    np.testing.assert_array_equal(m.scale, scale)
    np.testing.assert_allclose(m.transform(X), Xs, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(m.predict(X), ms.predict(Xs))


def test_model_file_holds_no_pickles_and_a_json_header(tmp_path, fitted):
    path = tmp_path / "model.npz"
    save_model(fitted, path)
    data = _arrays(path)  # allow_pickle=False: would raise on object arrays
    assert all(a.dtype != object for a in data.values())
    header = json.loads(data["header"].tobytes())
    assert header["format"] == "gpumeanshift-model"
    assert header["format_version"] == FORMAT_VERSION
    assert header["kernel"] == "flat" and header["bandwidth"] == 1.0
    assert header["params"]["bin_seeding"] is True


def test_load_model_backend_is_chosen_at_load_time(tmp_path, fitted):
    path = tmp_path / "model.npz"
    save_model(fitted, path)
    assert load_model(path).estimator.backend == "auto"
    assert load_model(path, backend="numpy").estimator.backend == "numpy"


def test_saved_seeds_come_back(tmp_path):
    seeds = np.array([[0.0, 0.0], [4.0, 4.0]])
    ms = MeanShift(bandwidth=1.0, seeds=seeds, backend="numpy").fit(X)
    save_model(ms, tmp_path / "m.npz")
    m = load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(m.estimator.seeds, seeds)
    assert m.header["n_seeds"] == 2


def test_save_model_errors(tmp_path, fitted):
    with pytest.raises(ValueError, match="not fitted"):
        save_model(MeanShift(), tmp_path / "m.npz")
    with pytest.raises(ValueError, match="both mean and scale"):
        save_model(fitted, tmp_path / "m.npz", mean=[0.0, 0.0])
    with pytest.raises(ValueError, match="scale must be positive"):
        save_model(fitted, tmp_path / "m.npz", mean=[0.0, 0.0], scale=[1.0, 0.0])
    with pytest.raises(ValueError, match="columns has 3 names"):
        save_model(fitted, tmp_path / "m.npz", columns=["a", "b", "c"])
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- atomic writes
def _failing_savez(file, *args, **kwargs):
    file.write(b"PK\x03\x04 half an archive")
    raise OSError(28, "No space left on device")


def test_failed_save_keeps_the_previous_model_and_leaves_no_partial_file(tmp_path, fitted, monkeypatch):
    path = tmp_path / "model.npz"
    save_model(fitted, path)
    good = path.read_bytes()
    monkeypatch.setattr(np, "savez", _failing_savez)
    other = MeanShift(bandwidth=3.0, backend="numpy").fit(X)
    with pytest.raises(OSError, match="No space left"):
        save_model(other, path)
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["model.npz"]
    monkeypatch.undo()
    assert load_model(path).estimator.bandwidth_ == 1.0


def test_failed_save_of_a_new_file_creates_nothing(tmp_path, fitted, monkeypatch):
    monkeypatch.setattr(np, "savez", _failing_savez)
    with pytest.raises(OSError, match="No space left"):
        save_model(fitted, tmp_path / "model.npz")
    assert os.listdir(tmp_path) == []


def test_failed_rename_leaves_no_temporary_file(tmp_path, fitted, monkeypatch):
    path = tmp_path / "model.npz"
    save_model(fitted, path)
    good = path.read_bytes()

    def failing_replace(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(PermissionError):
        save_model(fitted, path)
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["model.npz"]


def test_interrupted_write_is_cleaned_up(tmp_path):
    target = tmp_path / "labels.csv"
    target.write_text("label\n0\n")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target, "w") as f:
            f.write("label\n1\n")
            raise KeyboardInterrupt
    assert target.read_text() == "label\n0\n"
    assert os.listdir(tmp_path) == ["labels.csv"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_atomic_write_gives_new_files_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        write_labels(tmp_path / "l.csv", [0, 1])
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "l.csv").stat().st_mode) == 0o644


def test_atomic_write_rejects_unknown_modes(tmp_path):
    with pytest.raises(ValueError, match="mode must be"):
        with atomic_write(tmp_path / "x", "a"):
            pass


# ---------------------------------------------------------------- model validation
def test_load_refuses_a_future_format_version(tmp_path, fitted):
    save_model(fitted, tmp_path / "m.npz")
    bad = _rewrite(tmp_path / "m.npz", tmp_path / "future.npz",
                   header={"format_version": FORMAT_VERSION + 1, "library_version": "9.0"})
    with pytest.raises(ValueError, match=r"written by gpumeanshift 9\.0 in model format version 2.*Upgrade"):
        load_model(bad)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(header={"format": "something-else"}), "format is 'something-else', not 'gpumeanshift-model'"),
        (dict(header={"format_version": 0}), "invalid model format version"),
        (dict(header={"format_version": "1"}), "invalid model format version"),
        (dict(drop=["header"]), "has no header"),
        (dict(header_bytes=b"{not json"), "bad header"),
        (dict(drop=["cluster_centers"]), "no cluster_centers"),
        (dict(cluster_centers=np.array([[1, 2], [3, 4], [5, 6]])), "cluster_centers has dtype int64, expected float64"),
        (dict(cluster_centers=np.zeros(6)), r"cluster_centers has shape \(6,\), but the header says \(3, 2\)"),
        (dict(cluster_centers=np.zeros((2, 2))), r"cluster_centers has shape \(2, 2\), but the header says \(3, 2\)"),
        (dict(cluster_centers=np.full((3, 2), np.nan)), "NaN or infinity"),
        (dict(header={"bandwidth": -1.0}), "bandwidth must be a positive"),
        (dict(header={"bandwidth": "wide"}), "bandwidth must be a positive"),
        (dict(header={"kernel": "epanechnikov"}), "kernel must be one of"),
        (dict(header={"params": [1, 2]}), "params is not a JSON object"),
        (dict(header={"n_clusters": 3.0}), "n_clusters must be a positive integer"),
        (dict(header={"dtype": "float16"}), "dtype must be 'float32' or 'float64'"),
        (dict(header={"standardized": True}), "mean or scale is missing"),
        (dict(header={"standardized": True}, mean=np.zeros(2), scale=np.zeros(2)), "scale must be positive"),
        (dict(header={"standardized": True}, mean=np.zeros(3), scale=np.ones(3)), r"mean has shape \(3,\), but the header says \(2,\)"),
        (dict(header={"standardized": True}, mean=np.zeros(2, np.float32), scale=np.ones(2)), "mean has dtype float32, expected float64"),
        (dict(cluster_sizes=np.array([1.5, np.nan, 3.0])), "cluster_sizes must be 3 finite non-negative numbers"),
        (dict(cluster_sizes=np.array([True, False, True])), "cluster_sizes has dtype bool"),
        (dict(cluster_sizes=np.array([1, -2, 3])), "cluster_sizes must be 3 finite non-negative numbers"),
        (dict(header={"columns": ["only-one"]}), "columns must be 2 names"),
    ],
)
def test_load_validates_the_content(tmp_path, fitted, change, message):
    assert len(fitted.cluster_centers_) == 3  # the cases above assume 3 centers of 2 features
    save_model(fitted, tmp_path / "m.npz")
    change = dict(change)
    raw = change.pop("header_bytes", None)
    if raw is not None:
        change["header"] = None
        data = _arrays(tmp_path / "m.npz")
        data["header"] = np.frombuffer(raw, dtype=np.uint8)
        np.savez(tmp_path / "bad.npz", **data)
        bad = tmp_path / "bad.npz"
    else:
        bad = _rewrite(tmp_path / "m.npz", tmp_path / "bad.npz", **change)
    with pytest.raises(ValueError, match=r"bad\.npz is not a valid gpumeanshift model: .*" + message):
        load_model(bad)


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "npy", "text"])
def test_load_reports_damaged_files_clearly(tmp_path, fitted, damage):
    path = tmp_path / "m.npz"
    save_model(fitted, path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        i = data.index(b"header.npy") + 200  # inside the header member's data
        path.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "npy":
        np.save(tmp_path / "a.npy", np.zeros(3))
        os.replace(tmp_path / "a.npy", path)
    else:
        path.write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match=r"m\.npz is not a valid gpumeanshift model: "):
        load_model(path)


class _Trap:
    """Unpickling this creates a marker file: proof that code ran."""

    marker = None

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("member", ["extra", "seeds", "cluster_centers"])
def test_load_never_unpickles(tmp_path, fitted, member):
    save_model(fitted, tmp_path / "m.npz")
    marker = tmp_path / "code-ran"
    _Trap.marker = marker
    data = _arrays(tmp_path / "m.npz")
    trap = np.empty((3, 2), dtype=object)
    trap[0, 0] = _Trap()
    data[member] = trap
    np.savez(tmp_path / "evil.npz", **data)  # np.savez pickles object arrays
    if member == "extra":  # not a member of the format: never opened
        assert load_model(tmp_path / "evil.npz").estimator.n_features_in_ == 2
    else:
        with pytest.raises(ValueError, match=f"{member}.npy has an invalid .npy header"):
            load_model(tmp_path / "evil.npz")
    assert not marker.exists()


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "nope.npz")


# ---------------------------------------------------------------- the kernel of older files
def _save_like_the_first_format_1_writer(model, path):
    """A model file exactly as save_model wrote it when the format began
    (gpumeanshift 4108d6d): every parameter of that time in ``params``
    (max_memory and verbose did not exist yet), the kernel also at the top."""
    params = {k: v for k, v in model.get_params().items() if k not in ("max_memory", "verbose")}
    params["seeds"] = None
    centers = model.cluster_centers_
    header = {
        "format": "gpumeanshift-model", "format_version": 1, "library_version": "0.1.0",
        "n_clusters": len(centers), "n_features": centers.shape[1], "dtype": str(centers.dtype),
        "bandwidth": float(model.bandwidth_), "kernel": model.kernel, "params": params,
        "standardized": False, "columns": None,
        "fit": {"backend": model.backend_, "n_iter": model.n_iter_},
    }
    blob = np.frombuffer(json.dumps(header, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    np.savez(path, header=blob, cluster_centers=centers,
             cluster_sizes=model.cluster_sizes_.astype(np.int64))


@pytest.mark.parametrize("kernel", ["gaussian", "flat"])
def test_older_file_loads_with_the_kernel_it_was_saved_with(tmp_path, monkeypatch, kernel):
    """Every model file written so far names its kernel (twice: at the top and in
    params); it loads with that kernel whatever the library's default is now,
    and parameters added since load with the values the fit had."""
    ms = MeanShift(bandwidth=1.0, kernel=kernel, backend="numpy").fit(X)
    _save_like_the_first_format_1_writer(ms, tmp_path / "old.npz")
    other = {"gaussian": "flat", "flat": "gaussian"}[kernel]
    monkeypatch.setitem(MeanShift.__init__.__kwdefaults__, "kernel", other)
    monkeypatch.setitem(MeanShift.__init__.__kwdefaults__, "max_memory", 12345)
    monkeypatch.setitem(MeanShift.__init__.__kwdefaults__, "verbose", 1)
    assert MeanShift().kernel == other
    est = load_model(tmp_path / "old.npz").estimator
    assert est.kernel == kernel
    assert est.max_memory is None and est.verbose == 0
    new = np.array([[0.1, 0.2], [3.9, 4.2], [1.0, 3.0]])
    np.testing.assert_array_equal(est.predict(new), ms.predict(new))


def test_save_model_names_the_kernel_and_every_parameter(tmp_path, fitted):
    save_model(fitted, tmp_path / "m.npz")
    header = json.loads(_arrays(tmp_path / "m.npz")["header"].tobytes())
    assert header["kernel"] == header["params"]["kernel"] == "flat"
    assert set(header["params"]) == set(MeanShift._get_param_names())


@pytest.mark.parametrize("change, message", [
    (dict(header={"kernel": None}), "kernel must be one of"),
    (dict(params_drop=["kernel"]), "params lacks kernel"),
    (dict(params_drop=["tol", "algorithm"]), "params lacks algorithm, tol"),
    (dict(params={"kernel": "gaussian"}), "params says kernel='gaussian' but the header says 'flat'"),
])
def test_file_that_does_not_say_its_kernel_is_refused(tmp_path, fitted, change, message):
    """Never loaded with the library's default kernel, which older fits did not use."""
    save_model(fitted, tmp_path / "m.npz")
    data = _arrays(tmp_path / "m.npz")
    h = json.loads(data["header"].tobytes())
    h.update(change.get("header", {}))
    h["params"].update(change.get("params", {}))
    for key in change.get("params_drop", ()):
        del h["params"][key]
    data["header"] = np.frombuffer(json.dumps(h).encode(), dtype=np.uint8)
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(ValueError, match="is not a valid gpumeanshift model: " + message):
        load_model(tmp_path / "bad.npz")


def test_file_without_the_kernel_field_is_refused(tmp_path, fitted):
    save_model(fitted, tmp_path / "m.npz")
    data = _arrays(tmp_path / "m.npz")
    h = json.loads(data["header"].tobytes())
    del h["kernel"]
    data["header"] = np.frombuffer(json.dumps(h).encode(), dtype=np.uint8)
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(ValueError, match="is not a valid gpumeanshift model: the header names no kernel"):
        load_model(tmp_path / "bad.npz")


def test_every_parameter_has_a_value_for_files_that_predate_it():
    """A new MeanShift parameter must be given the value older files were fitted
    with (not the current default, which may change later)."""
    from gpumeanshift.io import _model_format

    assert set(MeanShift._get_param_names()) == set(_model_format._PARAMS_V1) | set(_model_format._PARAMS_ADDED)


def test_save_model_refuses_parameters_load_model_would_refuse(tmp_path):
    ms = MeanShift(bandwidth=1.0, backend="numpy").fit(X)
    ms.max_iter = -1  # changed after the fit: the file would not load
    with pytest.raises(ValueError, match="max_iter must be >= 0"):
        save_model(ms, tmp_path / "m.npz")
    ms.max_iter, ms.bin_seeding = 300, "yes"
    with pytest.raises(ValueError, match="bin_seeding must be True or False"):
        save_model(ms, tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


def test_load_model_checks_its_backend_argument(tmp_path, fitted):
    save_model(fitted, tmp_path / "m.npz")
    with pytest.raises(ValueError, match=r"^backend='nope' is not one of \('auto', 'numpy', 'cupy'"):
        load_model(tmp_path / "m.npz", backend="nope")
    with pytest.raises(TypeError, match="backend must be 'auto', a backend name or an object"):
        load_model(tmp_path / "m.npz", backend=3)


# ---------------------------------------------------------------- reading points
def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "name, text, names",
    [
        ("a.csv", "x,y\n1,2\n3,4\n", ["x", "y"]),
        ("a.csv", '"x","y"\n"1","2"\n3,4\n', ["x", "y"]),
        ("a.csv", "\ufeff# comment\n\nx;y\n1;2\n3;4\n", ["x", "y"]),
        ("a.tsv", "x\ty\n1\t2\n3\t4\n", ["x", "y"]),
        ("a.txt", "1 2\n3   4\n", None),
        ("a.csv", "1,2\n3,4\n", None),
        ("a.csv", "1e0,2.0\n3,4\n", None),
    ],
)
def test_read_points_detects_delimiter_and_header(tmp_path, name, text, names):
    Xr, got = read_points(_write(tmp_path / name, text))
    np.testing.assert_array_equal(Xr, [[1.0, 2.0], [3.0, 4.0]])
    assert Xr.dtype == np.float64
    assert got == names
    assert read_column_names(tmp_path / name) == names


def test_read_points_selects_columns_by_name_or_index(tmp_path):
    path = _write(tmp_path / "a.csv", "id,x,label,y\n7,1,a,2\n8,3,b,4\n")
    for cols in ("x,y", ["x", "y"], "1,3", [1, 3]):
        Xr, names = read_points(path, columns=cols)
        np.testing.assert_array_equal(Xr, [[1.0, 2.0], [3.0, 4.0]])
        assert names == ["x", "y"]
    Xr, _ = read_points(path, columns="y,x")
    np.testing.assert_array_equal(Xr, [[2.0, 1.0], [4.0, 3.0]])


def test_read_points_npy_keeps_float32_and_reads_1d_as_one_feature(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(6, dtype=np.float32).reshape(3, 2))
    Xr, names = read_points(tmp_path / "a.npy")
    assert Xr.dtype == np.float32 and Xr.shape == (3, 2) and names is None
    np.save(tmp_path / "b.npy", np.arange(4))
    Xr, _ = read_points(tmp_path / "b.npy")
    assert Xr.dtype == np.float64 and Xr.shape == (4, 1)
    Xr, _ = read_points(tmp_path / "a.npy", columns="1")
    np.testing.assert_array_equal(Xr.ravel(), [1, 3, 5])


@pytest.mark.parametrize(
    "name, content, columns, message",
    [
        ("a.xlsx", "x", None, "unsupported file type '.xlsx'"),
        ("a.csv", "", None, "is empty"),
        ("a.csv", "x,y\n", None, "no data rows"),
        ("a.csv", "x,name\n1,bob\n", None, "could not convert string 'bob'.*--columns"),
        ("a.csv", "x,y\n1,2\n3,4\n5,zz\n", None, r"'zz' to float64 at data row 3, column 2 \('y'\)"),
        ("a.csv", "x,y\n1,2\n3,nan\n", None, "data row 2 has a missing or non-finite value"),
        ("a.csv", "x,y\n1,2\n3,\n", None, "could not convert string ''"),
        ("a.csv", "x,y\n1,2\n3,4,5\n", None, "number of columns changed"),
        ("a.csv", "x,y\n1,2\n", "z", "no column named 'z'; the columns are x, y"),
        ("a.csv", "x,y\n1,2\n", "2", "column index 2 is out of range"),
        ("a.csv", "x,y\n1,2\n", "x,,y", "comma-separated list"),
        ("a.csv", "1,2\n", "x", "has no header; use 0-based indices"),
    ],
)
def test_read_points_errors(tmp_path, name, content, columns, message):
    path = _write(tmp_path / name, content)
    with pytest.raises(ValueError, match=message):
        read_points(path, columns=columns)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((2, 2, 2)), "expected a 2-D array"),
        (np.array(["a", "b"]), "expected a numeric array"),
        (np.zeros(2, dtype=[("x", "f8"), ("y", "f8")]), "expected a numeric array"),
        (np.array([[1.0, np.inf]]), "non-finite"),
        (np.array([{"a": 1}], dtype=object), "not a readable .npy file"),
    ],
)
def test_read_points_npy_errors(tmp_path, array, message):
    np.save(tmp_path / "a.npy", array, allow_pickle=True)
    with pytest.raises(ValueError, match=message):
        read_points(tmp_path / "a.npy")


def test_read_points_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_points(tmp_path / "nope.csv")


def test_read_parquet_without_pyarrow_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    (tmp_path / "a.parquet").write_bytes(b"PAR1")
    with pytest.raises(ValueError, match=r"reading Parquet needs pyarrow \(pip install pyarrow\)"):
        read_points(tmp_path / "a.parquet")
    assert read_column_names(tmp_path / "a.parquet") is None


def test_read_parquet_with_pyarrow(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1.0, 3.0], "name": ["a", "b"], "y": [2, 4]}), tmp_path / "a.parquet")
    Xr, names = read_points(tmp_path / "a.parquet", columns="x,y")
    np.testing.assert_array_equal(Xr, [[1.0, 2.0], [3.0, 4.0]])
    assert names == ["x", "y"]
    with pytest.raises(ValueError, match="column 'name' is not numeric"):
        read_points(tmp_path / "a.parquet")


# ---------------------------------------------------------------- writing labels
@pytest.mark.parametrize("suffix", [".csv", ".npy"])
def test_write_labels_round_trip(tmp_path, suffix):
    labels = np.array([2, 0, -1, 1])
    path = tmp_path / f"labels{suffix}"
    write_labels(path, labels)
    if suffix == ".npy":
        got = np.load(path, allow_pickle=False)
        assert got.dtype == np.int64
    else:
        got = np.loadtxt(path, skiprows=1, dtype=np.int64)
        assert path.read_text().startswith("label\n")
    np.testing.assert_array_equal(got, labels)


def test_write_labels_refuses_other_suffixes(tmp_path):
    with pytest.raises(ValueError, match=r"\.csv or \.npy"):
        write_labels(tmp_path / "labels.txt", [0])
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- pickling (issue 7)
class FakeDeviceArray:
    """Stands in for a CuPy array: device memory, copied to the host by ``get()``,
    refusing to be pickled (so a pickle holding one fails the test)."""

    __cuda_array_interface__ = {}

    def __init__(self, a):
        self._host = np.array(a)

    def get(self):
        return self._host.copy()

    def __reduce__(self):
        raise TypeError("a device array reached the pickle")


@pytest.fixture
def fake_cupy(monkeypatch):
    """``import cupy`` gives a module whose arrays are FakeDeviceArray."""
    import types

    mod = types.ModuleType("cupy")
    mod.ndarray = FakeDeviceArray
    mod.asarray = FakeDeviceArray
    monkeypatch.setitem(sys.modules, "cupy", mod)
    return mod


def test_pickle_of_a_gpu_fit_holds_numpy_arrays(fake_cupy, monkeypatch):
    import pickle

    from gpumeanshift.backends import base

    # The CUDA backend on the emulated runtime, by name (a backend instance as
    # the parameter would be pickled with its runtime).
    monkeypatch.setitem(base._REGISTRY, "emulated", ("gpumeanshift.testing", "emulated_backend"))
    seeds = X[::10]
    ms = MeanShift(bandwidth=1.0, kernel="flat", seeds=seeds, backend="emulated",
                   output_type="cupy").fit(X)
    ref = MeanShift(bandwidth=1.0, kernel="flat", seeds=seeds, backend="numpy").fit(X)
    assert ms.backend_ == "cupy"
    assert isinstance(ms.cluster_centers_, FakeDeviceArray)
    assert isinstance(ms.labels_, FakeDeviceArray)
    ms.seeds = FakeDeviceArray(seeds)
    back = pickle.loads(pickle.dumps(ms))
    arrays = {k: v for k, v in vars(back).items() if hasattr(v, "shape")}
    assert {"cluster_centers_", "labels_", "cluster_sizes_", "center_intensity_", "seeds"} <= set(arrays)
    assert all(type(v) is np.ndarray for v in arrays.values()), {k: type(v) for k, v in arrays.items()}
    np.testing.assert_allclose(back.cluster_centers_, ref.cluster_centers_, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(back.labels_, ref.labels_)
    np.testing.assert_array_equal(back.seeds, seeds)
    # The original is untouched: still device arrays.
    assert isinstance(ms.cluster_centers_, FakeDeviceArray)


def test_from_centers_gives_a_model_that_predicts_like_the_fit(fitted):
    ms = MeanShift._from_centers(fitted.cluster_centers_, fitted.bandwidth_,
                                 {"kernel": "flat", "backend": "numpy"},
                                 backend_name="numpy", n_iter=fitted.n_iter_,
                                 cluster_sizes=fitted.cluster_sizes_)
    np.testing.assert_array_equal(ms.predict(X), fitted.labels_)
    assert ms.bandwidth_ == fitted.bandwidth_ and ms.n_features_in_ == 2
    np.testing.assert_array_equal(ms.cluster_sizes_, fitted.cluster_sizes_)
    assert not hasattr(ms, "labels_")


@pytest.mark.parametrize("args, error, match", [
    ((np.zeros(3), 1.0), ValueError, "centers must be a non-empty 2-D array"),
    ((np.zeros((2, 1), np.int64), 1.0), TypeError, "centers must be float32 or float64"),
    ((np.array([[np.nan]]), 1.0), ValueError, "NaN or infinity"),
    ((np.zeros((2, 1)), 0.0), ValueError, "bandwidth must be finite and > 0"),
])
def test_from_centers_validates(args, error, match):
    with pytest.raises(error, match=match):
        MeanShift._from_centers(*args)


# ---------------------------------------------------------------- images
def test_image_round_trip_png_and_npy(tmp_path):
    pytest.importorskip("PIL")
    from gpumeanshift.io import read_image, write_image

    img = np.random.default_rng(0).integers(0, 256, size=(7, 9, 3), dtype=np.uint8)
    for name in ("a.png", "a.npy", "a.bmp"):
        write_image(tmp_path / name, img)
        back, note = read_image(tmp_path / name)
        np.testing.assert_array_equal(back, img)
        assert note is None
    grey = img[:, :, 0]
    write_image(tmp_path / "g.png", grey)
    np.testing.assert_array_equal(read_image(tmp_path / "g.png")[0], grey)


def test_read_image_drops_alpha_and_says_so(tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    from gpumeanshift.io import read_image

    rgba = np.zeros((4, 5, 4), dtype=np.uint8)
    rgba[..., 0] = 100
    rgba[..., 3] = 255
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    img, note = read_image(tmp_path / "a.png")
    assert img.shape == (4, 5, 3) and (img[..., 0] == 100).all()
    assert note == "RGBA image converted to RGB (alpha channel dropped)"


@pytest.mark.parametrize("content, match", [
    (b"not an image", "is not an image Pillow can read"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "is not an image Pillow can read"),
])
def test_read_image_bad_files(tmp_path, content, match):
    pytest.importorskip("PIL")
    from gpumeanshift.io import read_image

    (tmp_path / "bad.png").write_bytes(content)
    with pytest.raises(ValueError, match=match):
        read_image(tmp_path / "bad.png")


def test_read_image_npy_shape_and_dtype_checks(tmp_path):
    from gpumeanshift.io import read_image

    np.save(tmp_path / "a.npy", np.zeros(5))
    with pytest.raises(ValueError, match=r"shape \(height, width\) or \(height, width, channels\)"):
        read_image(tmp_path / "a.npy")
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "missing.png")


@pytest.mark.parametrize("image, name, match", [
    (np.zeros((3, 3), np.float32), "a.png", "only uint8 images with 1, 3 or 4 channels"),
    (np.zeros((3, 3, 4), np.uint8), "a.jpg", "only uint8 images with 1 or 3 channels"),
    (np.zeros((3, 3, 2), np.uint8), "a.png", "only uint8 images"),
    (np.zeros((3, 3), np.uint8), "a.gif", "images can be written to .npy or"),
])
def test_write_image_refuses_what_the_format_cannot_hold(tmp_path, image, name, match):
    pytest.importorskip("PIL")
    from gpumeanshift.io import write_image

    with pytest.raises(ValueError, match=match):
        write_image(tmp_path / name, image)
    assert not (tmp_path / name).exists()
