"""scikit-learn's own estimator checks on MeanShift (NumPy backend)."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from gpumeanshift import MeanShift

# No check is expected to fail: the dict stays empty, and strict mode turns
# any unexpected pass of a listed check into a failure.
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@parametrize_with_checks(
    [MeanShift(backend="numpy"), MeanShift(backend="numpy", kernel="flat", bin_seeding=True)],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
    xfail_strict=True,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
