"""The shared representation measures against NumPy on small labelled point sets."""

import itertools

import numpy as np
import pytest

from jaxlocal.evaluate import class_distance_ratio


def np_mean_pairwise(points):
  return np.mean([np.linalg.norm(a - b) for a, b in itertools.permutations(points, 2)])


def test_class_distance_ratio_matches_numpy():
  rng = np.random.default_rng(0)
  labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])   # class 3 has one example: skipped
  features = rng.normal(size=(10, 2, 3)) + labels[:, None, None]
  got = class_distance_ratio(features, labels)
  flat = features.reshape(10, -1).astype(np.float64)
  intra = np.mean([np_mean_pairwise(flat[labels == c]) for c in (0, 1, 2)])
  inter = np_mean_pairwise(np.stack([flat[labels == c].mean(0) for c in (0, 1, 2)]))
  np.testing.assert_allclose(got['intra'], intra, rtol=1e-5)
  np.testing.assert_allclose(got['inter'], inter, rtol=1e-5)
  np.testing.assert_allclose(got['ratio'], inter / intra, rtol=1e-5)


def test_separated_classes_have_a_higher_ratio():
  rng = np.random.default_rng(1)
  labels = np.repeat(np.arange(3), 20)
  mixed = rng.normal(size=(60, 5))
  separated = mixed + 10 * np.eye(5)[labels]
  assert class_distance_ratio(separated, labels)['ratio'] > 5 * class_distance_ratio(
      mixed, labels)['ratio']


def test_bad_inputs():
  with pytest.raises(ValueError, match='3 feature rows but 2 labels'):
    class_distance_ratio(np.zeros((3, 2)), np.zeros(2))
  with pytest.raises(ValueError, match='at least two classes'):
    class_distance_ratio(np.zeros((3, 2)), np.array([0, 0, 1]))
