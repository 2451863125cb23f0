"""ci/constraints-lowest.txt pins exactly the lower bounds in pyproject.toml.

CI runs the suite a second time with those pins; this keeps the tested
versions and the declared bounds from drifting apart.
"""

import pathlib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # standard library from Python 3.11

ROOT = pathlib.Path(__file__).resolve().parents[1]
# CuPy needs a GPU, so the CPU run cannot install the cuda extras; kernel-check
# pins exact versions (==), so it has no lower bound to test.
UNTESTED_EXTRAS = {"cuda12", "cuda13", "kernel-check"}


def _requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra, deps in project["optional-dependencies"].items():
        if extra not in UNTESTED_EXTRAS:
            reqs.extend(deps)
    return [Requirement(r) for r in reqs]


def _pins():
    pins = {}
    for line in (ROOT / "ci" / "constraints-lowest.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def test_every_bound_is_pinned_at_its_lowest():
    pins = _pins()
    for req in _requirements():
        lower = [s for s in req.specifier if s.operator == ">="]
        assert len(lower) == 1, f"{req}: needs exactly one '>=' lower bound"
        name = canonicalize_name(req.name)
        assert name in pins, f"{req}: not pinned in ci/constraints-lowest.txt"
        assert pins[name] == Version(lower[0].version), (
            f"{req}: ci/constraints-lowest.txt pins {name}=={pins[name]}"
        )


def test_every_pin_is_a_declared_dependency():
    declared = {canonicalize_name(r.name) for r in _requirements()}
    assert set(_pins()) <= declared, set(_pins()) - declared
