"""The README's quick-start commands, executed, so they cannot silently rot.

Every fenced ``bash`` block of the "Quick start" section is split at ``&&``
into commands. Environment setup (creating and activating a venv, ``pip
install``) is skipped: the tests run in an environment where the package is
already installed. ``python -m pytest`` is run with ``--collect-only``
(running the whole suite from inside the suite would recurse); every other
command, ``gpumeanshift demo`` included, is run as written, in the
repository root, with this interpreter's ``bin`` directory first on PATH.
A command the README gains later is run too, unless it is setup.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SETUP = (
    re.compile(r"^python3? -m venv\b"),
    re.compile(r"^(\.|source) \S*activate$"),
    re.compile(r"^(python3? -m )?pip install\b"),
)


def quick_start_commands():
    text = README.read_text(encoding="utf-8")
    m = re.search(r"^## Quick start\s*$(.*?)(?=^## )", text, flags=re.M | re.S)
    assert m, "README.md has no '## Quick start' section"
    blocks = re.findall(r"^```(?:bash|sh|shell|console)\s*\n(.*?)^```", m.group(1), flags=re.M | re.S)
    commands = []
    for block in blocks:
        for line in block.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            line = re.sub(r"^\$ ", "", line)
            commands.extend(part.strip() for part in line.split("&&"))
    return commands


COMMANDS = quick_start_commands()
RUN = [c for c in COMMANDS if not any(p.search(c) for p in SETUP)]


def test_quick_start_has_the_two_documented_jobs():
    assert any(c.startswith("gpumeanshift demo") for c in RUN)
    assert any(c.startswith("python -m pytest") for c in RUN)
    # Everything skipped is environment setup, nothing else.
    skipped = [c for c in COMMANDS if c not in RUN]
    assert skipped and all(any(p.search(c) for p in SETUP) for c in skipped)
    # The setup installs this package (the tests stand in for that step).
    assert any(re.match(r"pip install [\"']?\.", c) for c in skipped)


def _run(command, timeout=300, cwd=ROOT):
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("GPUMEANSHIFT_DEBUG", None)
    env["MPLBACKEND"] = "Agg"
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("command", RUN)
def test_quick_start_command_runs(command, tmp_path):
    if command.startswith("python -m pytest"):
        # Collect only: the suite is valid and importable as the README says to run it.
        words = shlex.split(command)
        proc = _run(shlex.join(words + ["--collect-only", "-q", "-p", "no:cacheprovider"]))
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert re.search(r"^\d+ tests? collected", proc.stdout, flags=re.M) or re.search(
            r"\d+ tests collected", proc.stdout), proc.stdout[-1000:]
        return
    # Anything but the test command runs in a scratch directory: the demo
    # writes its picture to the current directory.
    proc = _run(command, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    if command.startswith("gpumeanshift demo"):
        # What the README promises this command shows.
        out = proc.stdout
        assert re.search(r"^data: 10,000 points in 2-D, 3 generated blobs", out, flags=re.M), out
        assert re.search(r"^bandwidth: [0-9.]+ \(estimate_bandwidth", out, flags=re.M), out
        assert re.search(r"^fit: .* on backend '(numpy|cupy)' in [0-9.]+ s", out, flags=re.M), out
        assert re.search(r"^clusters found: 3$", out, flags=re.M), out
        plot = re.search(r"--plot (\S+)", command)
        if plot:
            from matplotlib.image import imread

            png = tmp_path / plot.group(1)
            assert f"plot written to {plot.group(1)}" in out, out
            image = imread(png)
            assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
            assert image[..., :3].std() > 0  # not a blank canvas
