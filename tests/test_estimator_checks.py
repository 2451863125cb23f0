"""scikit-learn's own estimator checks on MeanShift (NumPy backend)."""

import inspect

from sklearn.utils.estimator_checks import parametrize_with_checks

from gpumeanshift import MeanShift

# No check is expected to fail: the dict stays empty, and strict mode turns
# any unexpected pass of a listed check into a failure.
EXPECTED_FAILED_CHECKS: dict[str, str] = {}
# scikit-learn < 1.6 has neither argument; with the dict empty, running every
# check plainly there tests the same thing.
_STRICT = (
    {"expected_failed_checks": lambda est: EXPECTED_FAILED_CHECKS, "xfail_strict": True}
    if "expected_failed_checks" in inspect.signature(parametrize_with_checks).parameters
    else {}
)


@parametrize_with_checks(
    [MeanShift(backend="numpy"), MeanShift(backend="numpy", kernel="flat", bin_seeding=True)],
    **_STRICT,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
