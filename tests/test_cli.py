"""The command line, driven as a user drives it: ``python -m gpumeanshift ...`` in a subprocess.

Also the generated demo data (gpumeanshift.datasets), which the demo runs on.
"""

import importlib.util
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gpumeanshift
from gpumeanshift import MeanShift, estimate_bandwidth
from gpumeanshift.datasets import make_blobs
from gpumeanshift.io import load_model, save_model

X, _ = make_blobs(n_samples=300, centers=[[0, 0], [5, 5], [0, 5]], cluster_std=0.6, random_state=0)
X3, _ = make_blobs(n_samples=240, centers=[[0, 0, 0], [5, 5, 0], [0, 5, 5]], cluster_std=0.6,
                   random_state=1)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run(*args, cwd, env=None, timeout=120):
    full_env = dict(os.environ, **(env or {}))
    full_env.pop("GPUMEANSHIFT_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "gpumeanshift", *map(str, args)],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


def assert_ok(proc):
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def assert_fails(proc, code, pattern):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert re.search(pattern, lines[0]), lines[0]


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    return width, height


def write_csv(path, X, header=("x", "y"), delimiter=","):
    with open(path, "w") as f:
        if header:
            f.write(delimiter.join(header) + "\n")
        for row in X:
            f.write(delimiter.join(repr(float(v)) for v in row) + "\n")
    return path


def fake_missing_module(tmp_path, name):
    """A directory to put first on PYTHONPATH so that ``import name`` fails."""
    d = tmp_path / f"no-{name}"
    (d / name).mkdir(parents=True)
    (d / name / "__init__.py").write_text(f'raise ImportError("No module named {name!r}")\n')
    return {"PYTHONPATH": os.pathsep.join([str(d), os.environ.get("PYTHONPATH", "")])}


# ---------------------------------------------------------------- demo
def test_demo_prints_clusters_bandwidth_backend_and_time(tmp_path):
    out = assert_ok(run("demo", "--n-samples", 3000, "--backend", "numpy", cwd=tmp_path))
    assert "data: 3,000 points in 2-D" in out
    assert re.search(r"^bandwidth: \d+\.\d+ \(estimate_bandwidth, quantile=0\.2, n_samples=500", out, re.M)
    assert re.search(r"on backend 'numpy' in \d+\.\d+ s \(\d+ iterations\)", out)
    assert "clusters found: 3" in out
    sizes = [int(m.replace(",", "")) for m in re.findall(r"^\s+\d+\s+([\d,]+)\s+\[", out, re.M)]
    assert len(sizes) == 3 and sum(sizes) == 3000 and min(sizes) > 900


def test_console_script_runs_the_demo(tmp_path):
    # The README's command is the console script, not python -m.
    script = Path(sys.executable).with_name("gpumeanshift.exe" if os.name == "nt" else "gpumeanshift")
    if not script.exists():
        pytest.skip("the gpumeanshift console script is not installed next to this Python")
    proc = subprocess.run([str(script), "demo", "--n-samples", "600", "--backend", "numpy"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert "clusters found: 3" in assert_ok(proc)


def test_demo_matches_the_in_process_estimator(tmp_path):
    out = assert_ok(run("demo", "--n-samples", 2000, "--backend", "numpy", cwd=tmp_path))
    Xd, _ = make_blobs(n_samples=2000, centers=[[1, 1], [-1, -1], [1, -1]], cluster_std=0.6,
                       random_state=0)
    h = estimate_bandwidth(Xd, quantile=0.2, n_samples=500)
    ms = MeanShift(bandwidth=h, kernel="flat", bin_seeding=True, backend="numpy").fit(Xd)
    assert f"bandwidth: {h:.6g} " in out
    assert f"clusters found: {len(ms.cluster_centers_)}" in out
    for size in ms.cluster_sizes_:
        assert f"{int(size):,}" in out


def test_demo_plot_writes_a_png_of_the_expected_size(tmp_path):
    pytest.importorskip("matplotlib")
    out = assert_ok(run("demo", "--n-samples", 1500, "--backend", "numpy", "--plot", "demo.png", cwd=tmp_path))
    assert "plot written to demo.png" in out
    assert png_size(tmp_path / "demo.png") == (640, 480)
    assert (tmp_path / "demo.png").stat().st_size > 5000


def test_plot_without_matplotlib_is_one_clear_error_and_writes_nothing(tmp_path):
    env = fake_missing_module(tmp_path, "matplotlib")
    proc = run("demo", "--n-samples", 300, "--plot", "demo.png", cwd=tmp_path, env=env)
    assert_fails(proc, 1, r"--plot needs matplotlib, which is not installed: pip install 'gpumeanshift\[plot\]'")
    assert not (tmp_path / "demo.png").exists()
    # Without --plot, matplotlib is never imported: the demo still runs.
    assert "clusters found: 3" in assert_ok(run("demo", "--n-samples", 300, cwd=tmp_path, env=env))


# ---------------------------------------------------------------- help, version, info
@pytest.mark.parametrize("command", [[], ["demo"], ["info"], ["cluster"], ["predict"], ["segment"]])
def test_help_for_every_command(tmp_path, command):
    out = assert_ok(run(*command, "--help", cwd=tmp_path))
    assert out.startswith("usage: gpumeanshift")
    assert "exit codes: 0 success, 1 data error, 2 usage error" in out


def test_version(tmp_path):
    assert assert_ok(run("--version", cwd=tmp_path)).strip() == f"gpumeanshift {gpumeanshift.__version__}"


def test_info_reports_versions_backends_gpu_and_kernel_compilation(tmp_path):
    out = assert_ok(run("info", cwd=tmp_path, timeout=300))
    assert f"gpumeanshift {gpumeanshift.__version__}" in out
    assert f"numpy {np.__version__}" in out
    assert re.search(r"^python \d+\.\d+", out, re.M)
    assert re.search(r"^backends: numpy(, \w+)* \(backend='auto' uses \w+\)(; cannot run here: .+)?$",
                     out, re.M)
    assert re.search(r"^cupy imports: (yes|no) \(", out, re.M)
    assert re.search(r"^(GPU 0: .+ GiB, compute capability \d+\.\d+|GPU: none found \(.+\))$", out, re.M)
    try:
        nvrtc = importlib.util.find_spec("cuda.bindings.nvrtc") is not None
    except ImportError:
        nvrtc = False
    if nvrtc:
        # The kernels compile with NVRTC wherever cuda-bindings is installed, GPU or not.
        assert re.search(r"^CUDA kernels compile here: yes \(NVRTC \d+\.\d+, sm_\d+, \d+ kernels", out, re.M)
    else:
        assert "CUDA kernels compile here: not checked: cuda.bindings.nvrtc is not importable" in out


def test_info_without_cuda_bindings_says_not_checked(tmp_path):
    # A None entry in sys.modules makes the module unimportable, as when not installed.
    code = ("import sys; sys.modules['cuda.bindings.nvrtc'] = None; "
            "from gpumeanshift.cli import main; sys.exit(main(['info']))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    out = assert_ok(proc)
    assert "CUDA kernels compile here: not checked: cuda.bindings.nvrtc is not importable" in out
    out = assert_ok(run("info", "--no-compile", cwd=tmp_path))
    assert "CUDA kernels compile here: not checked: --no-compile" in out


# ---------------------------------------------------------------- cluster on real files
def _labels(path):
    if str(path).endswith(".npy"):
        return np.load(path, allow_pickle=False)
    return np.loadtxt(path, skiprows=1, dtype=np.int64)


@pytest.mark.parametrize("fmt", ["csv-header", "csv-no-header", "tsv", "txt", "npy"])
def test_cluster_every_input_format_gives_the_estimator_labels(tmp_path, fmt):
    if fmt == "csv-header":
        path = write_csv(tmp_path / "pts.csv", X)
    elif fmt == "csv-no-header":
        path = write_csv(tmp_path / "pts.csv", X, header=None)
    elif fmt == "tsv":
        path = write_csv(tmp_path / "pts.tsv", X, delimiter="\t")
    elif fmt == "txt":
        path = write_csv(tmp_path / "pts.txt", X, header=None, delimiter=" ")
    else:
        path = tmp_path / "pts.npy"
        np.save(path, X)
    out = assert_ok(run("cluster", path.name, "--bandwidth", 1.5, "--kernel", "flat", "--backend", "numpy",
                        "-o", "labels.npy", cwd=tmp_path))
    ref = MeanShift(bandwidth=1.5, kernel="flat", backend="numpy").fit(X)
    assert f"clusters found: {len(ref.cluster_centers_)}" in out
    assert "labels written to labels.npy" in out
    np.testing.assert_array_equal(_labels(tmp_path / "labels.npy"), ref.labels_)


def test_round_trip_cluster_save_predict_gives_the_estimator_labels(tmp_path):
    write_csv(tmp_path / "pts.csv", X)
    assert_ok(run("cluster", "pts.csv", "--bandwidth", 1.2, "--kernel", "flat", "--bin-seeding",
                  "--backend", "numpy", "--output", "labels.csv", "--model", "model.npz", cwd=tmp_path))
    est = MeanShift(bandwidth=1.2, kernel="flat", bin_seeding=True, backend="numpy").fit(X)
    np.testing.assert_array_equal(_labels(tmp_path / "labels.csv"), est.labels_)
    saved = load_model(tmp_path / "model.npz")
    assert saved.header["params"]["backend"] == "numpy" and saved.columns == ["x", "y"]
    np.testing.assert_array_equal(saved.estimator.cluster_centers_, est.cluster_centers_)

    new = np.vstack([X[:50] + 0.3, [[30.0, 30.0]]])
    write_csv(tmp_path / "new.csv", new)
    out = assert_ok(run("predict", "model.npz", "new.csv", "--backend", "numpy", "-o", "pred.npy", cwd=tmp_path))
    assert f"predicted: 51 points from new.csv with model.npz ({len(est.cluster_centers_)} clusters" in out
    np.testing.assert_array_equal(_labels(tmp_path / "pred.npy"), est.predict(new))
    # Without --output the labels go to stdout, one per line.
    out = assert_ok(run("predict", "model.npz", "new.csv", cwd=tmp_path))
    np.testing.assert_array_equal(np.array(out.split(), dtype=np.int64), est.predict(new))


def test_round_trip_with_standardization_and_estimated_bandwidth(tmp_path):
    # Features on very different scales: standardization matters.
    Xs = X * np.array([1.0, 1000.0]) + np.array([0.0, 5e4])
    np.save(tmp_path / "pts.npy", Xs)
    out = assert_ok(run("cluster", "pts.npy", "--standardize", "--backend", "numpy",
                        "-o", "labels.npy", "--model", "model.npz", cwd=tmp_path))
    assert "(centers in the file's units)" in out
    Z = (Xs - Xs.mean(axis=0)) / Xs.std(axis=0)
    h = estimate_bandwidth(Z, quantile=0.3)
    est = MeanShift(bandwidth=h, kernel="flat", backend="numpy").fit(Z)
    saved = load_model(tmp_path / "model.npz")
    assert saved.standardized
    assert saved.estimator.bandwidth_ == pytest.approx(h, rel=1e-12)
    np.testing.assert_array_equal(_labels(tmp_path / "labels.npy"), est.labels_)

    new = Xs[::7] + np.array([0.1, 50.0])
    np.save(tmp_path / "new.npy", new)
    assert_ok(run("predict", "model.npz", "new.npy", "-o", "pred.csv", "--backend", "numpy", cwd=tmp_path))
    Znew = (new - Xs.mean(axis=0)) / Xs.std(axis=0)
    np.testing.assert_array_equal(_labels(tmp_path / "pred.csv"), est.predict(Znew))


def test_predict_picks_the_model_columns_by_name(tmp_path):
    with open(tmp_path / "train.csv", "w") as f:
        f.write("id,x,name,y\n")
        for i, (a, b) in enumerate(X):
            f.write(f"{i},{float(a)!r},p{i},{float(b)!r}\n")
    assert_ok(run("cluster", "train.csv", "--columns", "x,y", "--bandwidth", 1.5, "--backend", "numpy",
                  "--model", "model.npz", cwd=tmp_path))
    with open(tmp_path / "new.csv", "w") as f:  # other order, extra columns
        f.write("y,extra,x\n")
        for a, b in X[:20]:
            f.write(f"{float(b)!r},1,{float(a)!r}\n")
    out = assert_ok(run("predict", "model.npz", "new.csv", cwd=tmp_path))
    est = MeanShift(bandwidth=1.5, backend="numpy").fit(X)
    np.testing.assert_array_equal(np.array(out.split(), dtype=np.int64), est.predict(X[:20]))


def test_predict_outlier_threshold(tmp_path):
    est = MeanShift(bandwidth=1.5, backend="numpy").fit(X)
    save_model(est, tmp_path / "model.npz")
    new = np.vstack([X[:5], [[40.0, 40.0]]])
    np.save(tmp_path / "new.npy", new)
    out = assert_ok(run("predict", "model.npz", "new.npy", "--outlier-threshold", 3,
                        "-o", "pred.npy", cwd=tmp_path))
    assert "outliers (-1): 1" in out
    pred = _labels(tmp_path / "pred.npy")
    np.testing.assert_array_equal(pred, est.predict(new, outlier_threshold=3.0))
    assert pred[-1] == -1 and (pred[:-1] >= 0).all()
    out = assert_ok(run("predict", "model.npz", "new.npy", "--outlier-threshold", "bandwidth", cwd=tmp_path))
    np.testing.assert_array_equal(np.array(out.split(), dtype=np.int64),
                                  est.predict(new, outlier_threshold="bandwidth"))


@pytest.mark.parametrize("bandwidth", ["scott", "silverman", "quantile:0.2"])
def test_cluster_bandwidth_rules(tmp_path, bandwidth):
    np.save(tmp_path / "pts.npy", X)
    out = assert_ok(run("cluster", "pts.npy", "--bandwidth", bandwidth, "--backend", "numpy", cwd=tmp_path))
    if bandwidth == "quantile:0.2":
        h = estimate_bandwidth(X, quantile=0.2)
        assert "(estimate_bandwidth, quantile=0.2;" in out
    else:
        h = MeanShift(bandwidth=bandwidth, backend="numpy").fit(X).bandwidth_
        assert f"({bandwidth}'s rule)" in out
    assert f"bandwidth: {h:.6g} " in out


def test_cluster_plot_of_3d_data_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    np.save(tmp_path / "pts.npy", X3)
    out = assert_ok(run("cluster", "pts.npy", "--bandwidth", 2.0, "--bin-seeding", "--backend", "numpy",
                        "--plot", "clusters.png", cwd=tmp_path))
    assert "clusters found: 3" in out
    assert png_size(tmp_path / "clusters.png") == (640, 480)


# ---------------------------------------------------------------- documented errors
@pytest.fixture
def files(tmp_path):
    write_csv(tmp_path / "pts.csv", X)
    write_csv(tmp_path / "noheader.csv", X, header=None)
    write_csv(tmp_path / "pts3.csv", X3, header=("a", "b", "c"))
    (tmp_path / "text.csv").write_text("x,name\n1,bob\n2,alice\n")
    (tmp_path / "nan.csv").write_text("x,y\n1,2\n3,nan\n")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header-only.csv").write_text("x,y\n")
    (tmp_path / "data.xlsx").write_bytes(b"PK\x03\x04")
    write_csv(tmp_path / "dupes.csv", [[0.0, 0.0]] * 100 + [[1.0, 1.0]] * 100)
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2)))
    save_model(MeanShift(bandwidth=1.5, backend="numpy").fit(X), tmp_path / "model.npz")
    return tmp_path


ERRORS = [
    # usage errors: exit 2
    ([], 2, r"^gpumeanshift: error: choose a command: demo, info, cluster, predict"),
    (["frobnicate"], 2, r"invalid choice: 'frobnicate'"),
    (["demo", "--n-samples", "0"], 2, r"^gpumeanshift demo: error: argument --n-samples: expected a positive integer"),
    (["demo", "--backend", "tpu"], 2, r"argument --backend: invalid choice: 'tpu'"),
    (["demo", "--plot", "demo.jpg"], 2, r"--plot must end in \.png, \.svg, \.pdf"),
    (["demo", "--frobnicate"], 2, r"unrecognized arguments: --frobnicate"),
    (["cluster"], 2, r"^gpumeanshift cluster: error: the following arguments are required: FILE"),
    (["cluster", "pts.csv", "--bandwidth", "-1"], 2, r"bandwidth must be a positive finite number, got '-1'"),
    (["cluster", "pts.csv", "--bandwidth", "wide"], 2, r"expected a positive number, auto, scott, silverman or quantile:Q"),
    (["cluster", "pts.csv", "--bandwidth", "quantile:2"], 2, r"quantile must be a number in \(0, 1\]"),
    (["cluster", "pts.csv", "--kernel", "epanechnikov"], 2, r"argument --kernel: invalid choice"),
    (["cluster", "pts.csv", "-o", "labels.txt"], 2, r"--output must end in \.csv, \.npy"),
    (["predict", "model.npz"], 2, r"required: FILE"),
    (["predict", "model.npz", "pts.csv", "--outlier-threshold", "-2"], 2, r"expected a distance >= 0 or 'bandwidth'"),
    # data errors: exit 1
    (["cluster", "missing.csv"], 1, r"^gpumeanshift cluster: error: missing\.csv does not exist$"),
    (["cluster", "data.xlsx"], 1, r"unsupported file type '\.xlsx'; use one of \.csv"),
    (["cluster", "text.csv"], 1, r"text\.csv: could not convert string 'bob'.*choose the numeric columns with --columns"),
    (["cluster", "nan.csv"], 1, r"nan\.csv: data row 2 has a missing or non-finite value"),
    (["cluster", "empty.csv"], 1, r"empty\.csv is empty"),
    (["cluster", "header-only.csv"], 1, r"header-only\.csv has no data rows"),
    (["cluster", "cube.npy"], 1, r"expected a 2-D array of points, got shape \(2, 2, 2\)"),
    (["cluster", "pts.csv", "--columns", "zz"], 1, r"no column named 'zz'; the columns are x, y"),
    (["cluster", "pts.csv", "--columns", "5"], 1, r"column index 5 is out of range"),
    (["cluster", "noheader.csv", "--columns", "x"], 1, r"has no header; use 0-based indices"),
    (["cluster", "dupes.csv", "--bandwidth", "quantile:0.2"], 1,
     r"estimated bandwidth \(quantile 0\.2\) is 0: the mean distance of 200 points to their "
     r"k = max\(1, int\(0\.2 \* 200\)\) = 40 nearest neighbours"),
    (["cluster", "pts.csv", "-o", "nodir/labels.csv"], 1, r"cannot write nodir/labels\.csv: directory 'nodir' does not exist"),
    (["predict", "missing.npz", "pts.csv"], 1, r"model file 'missing\.npz' does not exist"),
    (["predict", "pts.csv", "pts.csv"], 1, r"pts\.csv is not a valid gpumeanshift model: not an \.npz archive"),
    (["predict", "model.npz", "pts3.csv"], 1, r"pts3\.csv has 3 columns but the model was fitted on 2 features; choose them with --columns"),
    (["predict", "model.npz", "missing.csv"], 1, r"missing\.csv does not exist"),
]


@pytest.mark.parametrize("args, code, pattern", ERRORS, ids=[" ".join(a) or "(none)" for a, _, _ in ERRORS])
def test_documented_errors_exit_code_and_one_line(files, args, code, pattern):
    assert_fails(run(*args, cwd=files), code, pattern)


def test_unusable_backend_is_a_data_error(files):
    if gpumeanshift.backends.base.cuda_available():
        pytest.skip("CuPy and a GPU are present: backend='cupy' runs here")
    assert_fails(run("cluster", "pts.csv", "--backend", "cupy", cwd=files), 1,
                 r"^gpumeanshift cluster: error: backend 'cupy' cannot run here: ")


def test_parquet_without_pyarrow_is_a_data_error(files):
    (files / "pts.parquet").write_bytes(b"PAR1")
    env = fake_missing_module(files, "pyarrow")
    assert_fails(run("cluster", "pts.parquet", cwd=files, env=env), 1,
                 r"reading Parquet needs pyarrow \(pip install pyarrow\)")


def test_failed_run_never_overwrites_good_outputs(files):
    (files / "labels.csv").write_text("label\n0\n")
    good_model = (files / "model.npz").read_bytes()
    proc = run("cluster", "nan.csv", "-o", "labels.csv", "--model", "model.npz", cwd=files)
    assert_fails(proc, 1, r"non-finite")
    assert (files / "labels.csv").read_text() == "label\n0\n"
    assert (files / "model.npz").read_bytes() == good_model


def test_write_failure_mid_run_is_one_line_and_keeps_the_previous_model(files, monkeypatch, capsys):
    # In process, so the failure can be injected where the model is written.
    from gpumeanshift.cli import main

    good_model = (files / "model.npz").read_bytes()

    def failing_savez(file, *args, **kwargs):
        file.write(b"PK\x03\x04 partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", failing_savez)
    monkeypatch.chdir(files)
    before = sorted(os.listdir(files))
    code = main(["cluster", "pts.csv", "--bandwidth", "1.5", "--backend", "numpy", "--model", "model.npz"])
    err = capsys.readouterr().err
    assert code == 1
    # The error names the user's file, not the temporary file it was written to.
    assert err.strip() == "gpumeanshift cluster: error: model.npz: No space left on device"
    assert (files / "model.npz").read_bytes() == good_model
    assert sorted(os.listdir(files)) == before  # no temporary file left behind


# ---------------------------------------------------------------- demo data (gpumeanshift.datasets)
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n_samples=1001, centers=[[1, 1], [-1, -1], [1, -1]], cluster_std=0.6, random_state=0),
        dict(n_samples=50, centers=4, n_features=3, random_state=3),
        dict(n_samples=[3, 5], random_state=1, cluster_std=[1.0, 2.0]),
        dict(n_samples=20, random_state=2, shuffle=False),
    ],
)
def test_make_blobs_equals_scikit_learn(kwargs):
    sk = pytest.importorskip("sklearn.datasets")
    Xa, ya = make_blobs(**kwargs)
    Xb, yb = sk.make_blobs(**kwargs)
    np.testing.assert_array_equal(Xa, Xb)
    np.testing.assert_array_equal(ya, yb)
    assert Xa.dtype == np.float64 and ya.dtype == np.int64


def test_make_blobs_does_not_import_scikit_learn(tmp_path):
    code = ("import sys; from gpumeanshift.datasets import make_blobs; make_blobs(10, random_state=0); "
            "print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(n_samples=0), ValueError, "n_samples must be >= 1"),
        (dict(n_samples=[1, 2], centers=[[0, 0]]), ValueError, "2 counts but there are 1 centers"),
        (dict(centers=2, cluster_std=[1.0, 2.0, 3.0]), ValueError, "3 values but there are 2 centers"),
        (dict(cluster_std=-1.0), ValueError, "cluster_std must be >= 0"),
        (dict(centers=[1, 2, 3]), ValueError, r"shape \(n_centers, n_features\)"),
        (dict(random_state="zero"), ValueError, "random_state must be"),
        (dict(n_samples="many"), TypeError, "n_samples must be an int or a sequence"),
    ],
)
def test_make_blobs_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        make_blobs(**kwargs)


# ---------------------------------------------------------------- segment
def _test_image(seed=0):
    rng = np.random.default_rng(seed)
    img = np.zeros((36, 48, 3), dtype=np.uint8)
    img[:, 24:] = (200, 40, 40)
    img[:18, :24] = (30, 160, 60)
    return np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    pytest.importorskip("PIL")
    from PIL import Image

    d = tmp_path_factory.mktemp("images")
    img = _test_image()
    Image.fromarray(img).save(d / "scene.png")
    Image.fromarray(img).save(d / "scene.jpg", quality=95)
    np.save(d / "scene.npy", img.astype(np.float64) / 255.0)
    np.save(d / "grey.npy", img[:, :, 0])
    (d / "notimage.png").write_bytes(b"plain text, not a PNG")
    return d


def test_segment_png_writes_the_library_result_and_a_plot(images, tmp_path):
    from gpumeanshift.segmentation import segment_image

    out = assert_ok(run("segment", images / "scene.png", "--sp", "4", "--sr", "25",
                        "--min-region-size", "20", "-o", "f.png", "--labels", "l.npy",
                        "--plot", "side.png", cwd=tmp_path))
    filtered, labels = segment_image(_test_image(), 4, 25, min_region_size=20)
    from PIL import Image

    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "f.png")), filtered)
    np.testing.assert_array_equal(np.load(tmp_path / "l.npy", allow_pickle=False), labels)
    assert np.load(tmp_path / "l.npy").dtype == np.int64
    assert png_size(tmp_path / "side.png") == (1200, 400)
    assert "image: 48 x 36 pixels, 3 channel(s), uint8" in out
    assert f"regions found: {labels.max() + 1}" in out
    assert labels.max() + 1 == 3


def test_segment_npy_in_lab_with_default_output_names(images, tmp_path):
    from gpumeanshift.cli import SEGMENT_MIN_REGION_SIZE
    from gpumeanshift.segmentation import segment_image

    out = assert_ok(run("segment", images / "scene.npy", "--color-space", "lab", "--sr", "8",
                        "--sp", "3", cwd=tmp_path))
    image = np.load(images / "scene.npy")
    filtered, labels = segment_image(image, 3, 8, color_space="lab",
                                     min_region_size=SEGMENT_MIN_REGION_SIZE)
    np.testing.assert_allclose(np.load(tmp_path / "scene_filtered.npy"), filtered, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(np.load(tmp_path / "scene_labels.npy"), labels)
    assert "filtered image written to scene_filtered.npy" in out
    assert "(lab)" in out


def test_segment_jpeg_and_grey_npy(images, tmp_path):
    assert_ok(run("segment", images / "scene.jpg", "--sp", "3", cwd=tmp_path))
    assert (tmp_path / "scene_filtered.png").stat().st_size > 0
    assert_ok(run("segment", images / "grey.npy", "-o", "g.png", "--sp", "3", cwd=tmp_path))
    from PIL import Image

    assert np.array(Image.open(tmp_path / "g.png")).shape == (36, 48)


SEGMENT_ERRORS = [
    (["segment"], 2, r"^gpumeanshift segment: error: the following arguments are required: IMAGE"),
    (["segment", "scene.png", "--sp", "0"], 2, r"argument --spatial-radius/--sp: expected a number >= 1, got '0'"),
    (["segment", "scene.png", "--sr", "-1"], 2, r"argument --range-radius/--sr: expected a number >= 0, got '-1'"),
    (["segment", "scene.png", "--min-region-size", "-1"], 2, r"expected an integer >= 0, got '-1'"),
    (["segment", "scene.png", "--color-space", "hsv"], 2, r"argument --color-space: invalid choice: 'hsv'"),
    (["segment", "scene.png", "--labels", "l.png"], 2, r"--labels must end in \.npy"),
    (["segment", "scene.png", "-o", "f.gif"], 2, r"--output must end in \.png, \.jpg"),
    (["segment", "missing.png"], 1, r"^gpumeanshift segment: error: missing\.png does not exist$"),
    (["segment", "notimage.png"], 1, r"notimage\.png is not an image Pillow can read"),
    (["segment", "grey.npy", "--color-space", "lab"], 1,
     r"segmentation failed: color_space='lab' needs 3 channels \(RGB\), got 1"),
    (["segment", "scene.npy", "-o", "f.png"], 1,
     r"f\.png: only uint8 images with 1, 3 or 4 channels can be written as \.png \(got float64"),
    (["segment", "scene.png", "-o", "nodir/f.png"], 1, r"cannot write nodir/f\.png: directory 'nodir' does not exist"),
]


@pytest.mark.parametrize("args, code, pattern", SEGMENT_ERRORS,
                         ids=[" ".join(a) for a, _, _ in SEGMENT_ERRORS])
def test_segment_errors_exit_code_and_one_line(images, args, code, pattern):
    assert_fails(run(*args, cwd=images), code, pattern)
    # Nothing was written next to the inputs.
    assert not list(images.glob("*_filtered*")) and not list(images.glob("*_labels*"))
    assert not (images / "f.png").exists()


# ---------------------------------------------------------------- --verbose
def test_verbose_logs_the_rounds_on_stderr_and_keeps_stdout(tmp_path):
    quiet = run("demo", "--n-samples", "600", "--backend", "numpy", cwd=tmp_path)
    loud = run("demo", "--n-samples", "600", "--backend", "numpy", "-v", cwd=tmp_path)
    assert_ok(quiet), assert_ok(loud)
    assert quiet.stderr == ""
    lines = loud.stderr.splitlines()
    assert lines[0].startswith("gpumeanshift: fit: 600 points x 2 features")
    rounds = [ln for ln in lines if ln.startswith("gpumeanshift: shift: iteration ")]
    assert rounds and re.search(r", 0 of \d+ seeds still moving$", rounds[-1]), rounds
    assert lines[-1].startswith("gpumeanshift: fit: 3 clusters")

    def strip_times(text):
        return re.sub(r"[0-9.]+ s\b", "T s", text)

    assert strip_times(loud.stdout) == strip_times(quiet.stdout)


def test_verbose_in_process_leaves_no_handler(capsys):
    import logging

    from gpumeanshift.cli import main

    logger = logging.getLogger("gpumeanshift")
    before = (list(logger.handlers), logger.level)
    assert main(["demo", "--n-samples", "300", "--backend", "numpy", "-v"]) == 0
    assert "gpumeanshift: shift: iteration 1 of at most 300" in capsys.readouterr().err
    assert (list(logger.handlers), logger.level) == before


# ---------------------------------------------------------------- no run destroys a user's data
def _snapshot(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


@pytest.fixture
def work(tmp_path):
    write_csv(tmp_path / "in.csv", X)
    os.link(tmp_path / "in.csv", tmp_path / "hardlink.csv")
    (tmp_path / "sub").mkdir()
    save_model(MeanShift(bandwidth=1.5, backend="numpy").fit(X), tmp_path / "model.npz")
    if importlib.util.find_spec("PIL") is not None:
        from PIL import Image

        Image.fromarray(_test_image()).save(tmp_path / "f.png")
    np.save(tmp_path / "f.npy", _test_image())
    return tmp_path


OVERWRITES = [
    (["cluster", "in.csv", "-o", "in.csv"], r"--output in\.csv is the input FILE; refusing to overwrite it"),
    (["cluster", "in.csv", "-o", "sub/../in.csv"], r"--output sub/\.\./in\.csv is the input FILE \(in\.csv\)"),
    (["cluster", "in.csv", "-o", "hardlink.csv"], r"--output hardlink\.csv is the input FILE \(in\.csv\)"),
    (["cluster", "in.csv", "--model", "in.csv"], r"argument --model: --model must end in \.npz, got 'in\.csv'"),
    (["cluster", "in.csv", "--model", "x.csv", "-o", "x.csv"], r"--model must end in \.npz"),
    (["cluster", "in.csv", "--plot", "in.csv"], r"--plot must end in \.png"),
    (["predict", "model.npz", "in.csv", "-o", "in.csv"], r"--output in\.csv is the input FILE; refusing"),
    (["segment", "f.png", "-o", "f.png"], r"--output f\.png is the input IMAGE; refusing to overwrite it"),
    (["segment", "f.npy", "-o", "out.npy", "--labels", "f.npy"], r"--labels f\.npy is the input IMAGE"),
    (["segment", "f.npy", "-o", "out.npy", "--labels", "out.npy"], r"--labels out\.npy is also --output"),
    (["segment", "f.png", "-o", "p.png", "--plot", "p.png"], r"--plot p\.png is also --output"),
]


@pytest.mark.parametrize("args, pattern", OVERWRITES, ids=[" ".join(a) for a, _ in OVERWRITES])
def test_an_output_onto_an_input_or_another_output_is_refused_before_any_work(work, args, pattern):
    if args[1] == "f.png":
        pytest.importorskip("PIL")
    before = _snapshot(work)
    proc = run(*args, cwd=work)
    assert_fails(proc, 2, pattern)
    assert proc.stdout == ""  # refused before reading or fitting anything
    assert _snapshot(work) == before


def test_unwritable_output_directory_is_found_before_the_fit(work):
    # /proc takes no new file, even from root (for which permission bits say nothing).
    if not os.path.isdir("/proc/self"):
        pytest.skip("needs Linux /proc")
    proc = run("cluster", "in.csv", "--bandwidth", "1.5", "-o", "/proc/labels.csv", cwd=work)
    assert_fails(proc, 1, r"^gpumeanshift cluster: error: cannot write /proc/labels\.csv: directory '/proc': ")
    assert ".tmp" not in proc.stderr  # the user's path, never the hidden temporary file
    assert proc.stdout == ""  # before reading the data and before the fit


def test_write_errors_name_the_users_path_not_the_temporary_file(tmp_path):
    from gpumeanshift.io import atomic_write, write_labels

    target = tmp_path / "labels.csv"
    with pytest.raises(OSError) as info:
        with atomic_write(target, "w") as f:
            f.write("partial")
            raise OSError(28, "No space left on device")
    assert info.value.filename == str(target)
    if os.path.isdir("/proc/self"):
        with pytest.raises(OSError) as info:
            write_labels("/proc/labels.csv", np.zeros(3, dtype=np.int64))
        assert info.value.filename == "/proc/labels.csv"
    assert os.listdir(tmp_path) == []


def test_sigterm_during_a_write_leaves_no_temporary_file(work):
    # The signal arrives while the labels are half written (deterministically: the
    # writer sends it to its own process), as when a long write is killed.
    code = (
        "import os, signal, sys, time\n"
        "import gpumeanshift.io._labels as labels_module\n"
        "real = labels_module._write_labels_csv\n"
        "def slow(f, labels):\n"
        "    f.write('label\\n0\\n')\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(30)\n"
        "labels_module._write_labels_csv = slow\n"
        "from gpumeanshift.cli import main\n"
        "sys.exit(main(['cluster', 'in.csv', '--bandwidth', '1.5', '--backend', 'numpy', "
        "'-o', 'labels.csv']))\n"
    )
    before = sorted(os.listdir(work))
    proc = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 128 + 15, proc.stderr
    assert proc.stderr.strip() == "gpumeanshift cluster: terminated"
    assert sorted(os.listdir(work)) == before  # no labels.csv, no .labels.csv.*.tmp


# ---------------------------------------------------------------- Unix habits
def test_dash_reads_stdin_and_writes_stdout(work):
    est = MeanShift(bandwidth=1.5, kernel="flat", backend="numpy").fit(X)
    csv_text = (work / "in.csv").read_text()
    proc = subprocess.run([sys.executable, "-m", "gpumeanshift", "cluster", "-", "--bandwidth", "1.5",
                           "--backend", "numpy", "-o", "-"], cwd=work, input=csv_text,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "label"  # stdout holds the labels alone; the summary went to stderr
    np.testing.assert_array_equal(np.array(lines[1:], dtype=np.int64), est.labels_)
    assert "data: 300 points x 2 features from standard input (columns x, y)" in proc.stderr
    assert "clusters found: 3" in proc.stderr

    # predict from stdin; the model's columns are picked by name after reading.
    with open(work / "wide.csv", "w") as f:
        f.write("id,y,x\n")
        for i, (a, b) in enumerate(X[:40]):
            f.write(f"{i},{float(b)!r},{float(a)!r}\n")
    ref = load_model(work / "model.npz").predict(X[:40])
    assert load_model(work / "model.npz").columns is None
    save_model(MeanShift(bandwidth=1.5, backend="numpy").fit(X), work / "named.npz", columns=["x", "y"])
    proc = subprocess.run([sys.executable, "-m", "gpumeanshift", "predict", "named.npz", "-"],
                          cwd=work, input=(work / "wide.csv").read_text(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.array(proc.stdout.split(), dtype=np.int64), ref)


def test_format_overrides_the_suffix_and_reads_npy_from_stdin(work):
    est = MeanShift(bandwidth=1.5, kernel="flat", backend="numpy").fit(X)
    (work / "points.dat").write_text((work / "in.csv").read_text())
    out = assert_ok(run("cluster", "points.dat", "--format", "csv", "--bandwidth", "1.5",
                        "--backend", "numpy", "-o", "l.npy", cwd=work))
    assert "data: 300 points x 2 features from points.dat (columns x, y)" in out
    np.testing.assert_array_equal(np.load(work / "l.npy"), est.labels_)
    np.save(work / "pts.npy", X)
    proc = subprocess.run([sys.executable, "-m", "gpumeanshift", "cluster", "-", "--format", "npy",
                           "--bandwidth", "1.5", "--backend", "numpy", "-o", "-"], cwd=work,
                          input=(work / "pts.npy").read_bytes(), capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.array(proc.stdout.split()[1:], dtype=np.int64), est.labels_)
    assert_fails(run("cluster", "points.dat", cwd=work), 1, r"unsupported file type '\.dat'")


@pytest.mark.parametrize("args", [
    ["predict", "model.npz", "big.npy"],
    ["cluster", "big.npy", "--bandwidth", "2", "--bin-seeding", "--backend", "numpy", "-o", "-"],
], ids=["predict", "cluster -o -"])
def test_a_closed_pipe_ends_quietly(work, args):
    big = np.tile(X, (700, 1))  # 210,000 labels: far more than a pipe buffer holds
    np.save(work / "big.npy", big)
    proc = subprocess.Popen([sys.executable, "-m", "gpumeanshift", *args], cwd=work,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()  # as '| head -1': read one line, then go away
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert first.strip() in (b"label", b"0", b"1", b"2")
    assert proc.returncode == 128 + 13, err
    assert "Error" not in err and "Traceback" not in err and "Exception" not in err, err


# ---------------------------------------------------------------- the summary
def test_summary_does_not_echo_every_column_name(tmp_path):
    n_cols = 2000
    rng = np.random.default_rng(0)
    data = rng.normal(size=(12, n_cols))
    write_csv(tmp_path / "wide.csv", data, header=[f"feature_{i:05d}" for i in range(n_cols)])
    out = assert_ok(run("cluster", "wide.csv", "--bandwidth", "1e6", "--backend", "numpy", cwd=tmp_path))
    first = out.splitlines()[0]
    assert first.startswith("data: 12 points x 2000 features from wide.csv (columns feature_00000, ")
    assert first.endswith(", ... (2000 columns))")
    assert "feature_01999" not in out
    assert len(out) < 2000


def test_one_cluster_is_said_in_the_singular(tmp_path):
    save_model(MeanShift(bandwidth=100.0, backend="numpy").fit(X), tmp_path / "one.npz")
    write_csv(tmp_path / "pts.csv", X)
    out = assert_ok(run("predict", "one.npz", "pts.csv", "-o", "l.csv", cwd=tmp_path))
    assert "(1 cluster, bandwidth 100" in out
    from gpumeanshift.cli import MAX_LISTED, _cluster_table

    k = MAX_LISTED + 1
    assert _cluster_table(np.zeros((k, 2)), np.ones(k))[-1] == "  ... and 1 more cluster"


def test_plot_titles_say_one_cluster_and_standardized_units(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    import gpumeanshift.plot as gplot
    from gpumeanshift.cli import main

    drawn = {}

    def record(X, labels, centers, **kwargs):
        drawn.update(X=np.asarray(X), centers=np.asarray(centers), **kwargs)
        return real(X, labels, centers, **kwargs)

    real = gplot.plot_clusters
    monkeypatch.setattr(gplot, "plot_clusters", record)
    monkeypatch.chdir(tmp_path)
    Xs = X * np.array([1.0, 1000.0]) + np.array([0.0, 5e4])
    write_csv(tmp_path / "pts.csv", Xs)
    assert main(["cluster", "pts.csv", "--standardize", "--bandwidth", "0.5", "--backend", "numpy",
                 "--plot", "p.png"]) == 0
    # The bandwidth in the title is in standardized units: so are the axes and points.
    assert drawn["title"].endswith("bandwidth 0.5 (standardized units)")
    np.testing.assert_allclose(drawn["X"].mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(drawn["X"].std(axis=0), 1.0, rtol=1e-9)
    assert list(drawn["axis_names"]) == ["x (standardized)", "y (standardized)"]
    assert np.abs(drawn["centers"]).max() < 3
    write_csv(tmp_path / "one.csv", X[:100])
    assert main(["cluster", "one.csv", "--bandwidth", "50", "--backend", "numpy", "--plot", "q.png"]) == 0
    assert ": 1 cluster, bandwidth 50" in drawn["title"]
    capsys.readouterr()


# ---------------------------------------------------------------- progress on a terminal
def _run_on_a_terminal(args, cwd, delay=0.0):
    """Run the CLI in process in a child whose stderr is a pseudo-terminal; return its bytes."""
    import pty
    import select

    code = ("import sys\nfrom gpumeanshift import _progress as p\n"
            f"p.BAR_DELAY = {delay}\np.REFRESH = 0.01\n"
            "from gpumeanshift.cli import main\n"
            f"sys.exit(main({list(map(str, args))!r}))\n")
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    out = proc.stdout.read().decode()
    proc.wait(timeout=120)
    return proc.returncode, out, seen.decode(errors="replace")


def test_a_long_fit_shows_both_phases_on_a_terminal_without_verbose(tmp_path):
    pytest.importorskip("pty")
    rng = np.random.default_rng(0)
    data = np.concatenate([rng.normal(c, 0.7, size=(2000, 2)) for c in ([0, 0], [6, 6])])
    np.save(tmp_path / "pts.npy", data)
    # quantile:0.2: the command line estimates the bandwidth itself (a phase of its own).
    code, out, term = _run_on_a_terminal(
        ["cluster", "pts.npy", "--bandwidth", "quantile:0.2", "--backend", "numpy"], tmp_path)
    assert code == 0, term
    assert "bandwidth estimate: " in term
    assert re.search(r"shift: iteration \d+ \(max 300\) \[[#.]{16}\] +\d+% of [\d,]+ seeds, \d+ s", term), term
    assert term.endswith("\r"), repr(term[-200:])  # the line is erased at the end
    assert "clusters found: 2" in out and "\r" not in out
    # Not a terminal (a pipe, a log file): no progress line at all.
    proc = run("cluster", "pts.npy", "--bandwidth", "quantile:0.2", "--backend", "numpy", cwd=tmp_path)
    assert_ok(proc)
    assert proc.stderr == ""


# ---------------------------------------------------------------- API edges
@pytest.mark.parametrize("points", [
    [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0], [5.0, 6.0]],  # n < 7: k = 1
    [[0.0, 0.0]] * 100 + [[1.0, 1.0]] * 100,  # 30% duplicates
], ids=["5 points", "duplicates"])
def test_auto_bandwidth_says_and_does_what_the_library_does(tmp_path, points):
    points = np.array(points)
    write_csv(tmp_path / "pts.csv", points)
    proc = run("cluster", "pts.csv", "--backend", "numpy", "-o", "l.csv", cwd=tmp_path)
    try:
        ref = MeanShift(kernel="flat", backend="numpy").fit(points)
    except ValueError as exc:
        first = str(exc).split(":")[0]
        assert_fails(proc, 1, r"^gpumeanshift cluster: error: clustering failed: " + re.escape(first))
    else:
        assert_ok(proc)
        np.testing.assert_array_equal(_labels(tmp_path / "l.csv"), ref.labels_)
        assert f"clusters found: {len(ref.cluster_centers_)}" in proc.stdout


def test_cluster_kernel_default_is_flat(tmp_path):
    from gpumeanshift.cli import build_parser

    assert build_parser().parse_args(["cluster", "f.csv"]).kernel == "flat"
    write_csv(tmp_path / "pts.csv", X)
    out = assert_ok(run("cluster", "pts.csv", "--bandwidth", "1.2", "--backend", "numpy",
                        "-o", "l.csv", cwd=tmp_path))
    assert "MeanShift(kernel='flat'" in out
    est = MeanShift(bandwidth=1.2, kernel="flat", backend="numpy").fit(X)
    np.testing.assert_array_equal(_labels(tmp_path / "l.csv"), est.labels_)


def test_info_does_not_list_cupy_as_a_backend_when_it_does_not_import(tmp_path):
    out = assert_ok(run("info", "--no-compile", cwd=tmp_path, env=fake_missing_module(tmp_path, "cupy")))
    line = next(ln for ln in out.splitlines() if ln.startswith("backends: "))
    usable = line.split(" (backend=")[0]
    assert usable == "backends: numpy", line
    assert "cannot run here: cupy (CuPy does not import" in line


def test_segment_readme_example_on_the_china_photo_gives_a_useful_segmentation(tmp_path):
    pytest.importorskip("PIL")
    datasets = pytest.importorskip("sklearn.datasets")
    from PIL import Image

    Image.fromarray(datasets.load_sample_image("china.jpg")).save(tmp_path / "china.png")
    out = assert_ok(run("segment", "china.png", "--sp", "10", "--sr", "20", cwd=tmp_path, timeout=600))
    labels = np.load(tmp_path / "china_labels.npy")
    n = labels.max() + 1
    assert f"regions found: {n:,}" in out
    # With no merging the same call gave 70,439 regions (most of a few pixels each).
    assert 20 <= n <= 1000
    assert np.bincount(labels.ravel()).min() >= 100
