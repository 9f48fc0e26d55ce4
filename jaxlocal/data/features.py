"""Datasets of features: a frozen network's view of every image, computed once."""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import numpy as np

from jaxlocal.data.sources import Dataset

MAX_FEATURE_BYTES = 8 * 2**30
Features = Callable[[jax.Array], jax.Array]


def map_features(features: Features, x: np.ndarray, *, batch_size: int = 1000) -> np.ndarray:
  """``features`` (jitted here) over ``x`` in batches: float32 (N, 1, 1, D), flattened per
  example. Raises ValueError before computing anything when the result would exceed 8 GiB."""
  fn = jax.jit(lambda b: features(b).reshape(b.shape[0], -1))
  dim = jax.eval_shape(fn, jax.ShapeDtypeStruct((1, *x.shape[1:]), x.dtype)).shape[-1]
  if 4 * dim * len(x) > MAX_FEATURE_BYTES:
    raise ValueError(f'{dim} features per example for {len(x)} examples need '
                     f'{4 * dim * len(x) / 2**30:.1f} GiB; read fewer or smaller blocks, or use '
                     'fewer examples')
  out = [np.asarray(fn(x[i:i + batch_size]), np.float32) for i in range(0, len(x), batch_size)]
  return np.concatenate(out)[:, None, None, :]


def feature_dataset(dataset: Dataset, features: Features, *, source: str,
                    batch_size: int = 1000) -> Dataset:
  """``dataset`` with its images replaced by ``features(images)`` (:func:`map_features`).

  ``features`` maps a uint8 batch (B, H, W, C) to (B, ...); the ``extra_tests`` are mapped
  too. Mean 0 and std 1 are recorded so the training loop uses the features as they are.
  """
  mapped = lambda x: map_features(features, x, batch_size=batch_size)
  x_train, x_test = mapped(dataset.x_train), mapped(dataset.x_test)
  dim = x_train.shape[-1]
  return dataclasses.replace(dataset, x_train=x_train, x_test=x_test,
                             mean=np.zeros(dim, np.float32), std=np.ones(dim, np.float32),
                             source=source,
                             extra_tests={k: (mapped(x), y)
                                          for k, (x, y) in dataset.extra_tests.items()})
