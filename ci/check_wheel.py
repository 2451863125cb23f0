"""Build the wheel and check that it ships every module, the CUDA kernel sources
and no benchmark code.

pyproject.toml lists the packages by name (kernels/ is mapped into the
package): a subpackage left off that list would be missing from the wheel
while every test of a checkout passed. So every .py file under gpumeanshift/
must be in the wheel.

An editable install reads kernels/ from the checkout, so only a built wheel
shows whether users get the .cu files. The speed race and the other
benchmarks live in bench/ and run from a checkout: neither bench/ nor the
race module the package once had (gpumeanshift/race.py) may be in the wheel.
"""

import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

root = pathlib.Path(__file__).resolve().parents[1]
expected = sorted(p.name for p in (root / "kernels").iterdir() if p.suffix in (".cu", ".cuh"))
# Built from a copy of the files git knows (tracked, or new and not ignored):
# an in-tree build reuses build/lib, whose stale files would hide a missing
# package.
files = subprocess.run(["git", "-C", str(root), "ls-files", "-co", "--exclude-standard", "-z"],
                       check=True, capture_output=True).stdout.decode().split("\0")
with tempfile.TemporaryDirectory() as out, tempfile.TemporaryDirectory() as src:
    for rel in filter(None, files):
        if (root / rel).is_file():
            (pathlib.Path(src) / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, pathlib.Path(src) / rel)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, src],
        check=True,
    )
    (wheel,) = pathlib.Path(out).glob("gpumeanshift-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
shipped = sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("gpumeanshift/kernels/"))
missing = sorted(set(expected) - set(shipped))
if not expected or missing:
    sys.exit(f"wheel {wheel.name} lacks kernel files: {missing or 'kernels/ is empty'}")
sources = sorted(p.relative_to(root).as_posix() for p in (root / "gpumeanshift").rglob("*.py")
                 if "__pycache__" not in p.parts)
missing_modules = sorted(set(sources) - set(names))
if not sources or missing_modules:
    sys.exit(f"wheel {wheel.name} lacks modules (add their package to pyproject.toml): "
             f"{', '.join(missing_modules) or 'gpumeanshift/ is empty'}")
bench_code = sorted(n for n in names
                    if n.startswith("bench/") or n.rsplit("/", 1)[-1] in ("race.py", "_cases.py"))
if bench_code:
    sys.exit(f"wheel {wheel.name} ships benchmark code: {', '.join(bench_code)}")
print(f"{wheel.name} ships all {len(sources)} modules and {len(shipped)} kernel files: "
      f"{', '.join(shipped)}; no benchmark code")
