"""Case 4 of issue 2: 1,000,000 points in 2-D with bin seeding, peak memory < 2 GB.

Each fit runs in a fresh interpreter (``_cases.run_memory_child``); the peak
is that process's ``ru_maxrss`` as returned by ``os.wait4``: the resident set
of the whole process (interpreter, imports, the 16 MB of data and every
NumPy and BLAS allocation), not only what NumPy allocates. The benchmark time
is the whole child process; the child's own fit time is recorded too.
scikit-learn runs the same fit for comparison (its peak has no target).
"""

from __future__ import annotations

import numpy as np
import pytest
from _record import check_target, record

import _cases

CASE4 = "4. bin seeding, 1M x 2-D"
_CHILD = {}


@pytest.mark.parametrize("impl", ["scikit-learn", "gpumeanshift"])
def test_million_points_peak_memory(request, benchmark, impl):
    benchmark.group = CASE4
    rep = benchmark.pedantic(
        _cases.run_memory_child, args=("sklearn" if impl == "scikit-learn" else impl,),
        rounds=1, iterations=1)
    _CHILD[impl] = rep
    peak_mb = rep["peak_rss_bytes"] / 2**20
    benchmark.extra_info.update(peak_rss_bytes=rep["peak_rss_bytes"], fit_seconds=rep["seconds"])
    if impl == "scikit-learn":
        record(CASE4, impl, seconds=rep["seconds"], peak_rss_mb=peak_mb)
        return
    assert rep["n_clusters"] >= 1
    if "scikit-learn" in _CHILD:
        np.testing.assert_allclose(rep["centers"], _CHILD["scikit-learn"]["centers"],
                                   rtol=0, atol=1e-9)
    sk = _CHILD.get("scikit-learn")
    met = rep["peak_rss_bytes"] < _cases.TARGET_PEAK_BYTES
    record(CASE4, impl, seconds=rep["seconds"], peak_rss_mb=peak_mb,
           ratio=sk["seconds"] / rep["seconds"] if sk else None,
           target="peak RSS < 2 GB", met=met)
    check_target(request, met, f"peak RSS {peak_mb:.0f} MB")
