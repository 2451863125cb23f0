import numpy as np
import pytest


@pytest.fixture(scope="session")
def blobs():
    """Three 2-D blobs, the shape of scikit-learn's MeanShift example."""
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n_samples=600, centers=[[1, 1], [-1, -1], [1, -1]],
                      cluster_std=0.5, random_state=0)
    return X, y


def assert_same_clustering(ours, ref, *, atol=1e-9):
    """Centers within atol, identical labels and iteration counts."""
    assert ours.cluster_centers_.shape == ref.cluster_centers_.shape
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=0, atol=atol)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    assert ours.n_iter_ == ref.n_iter_
