"""Representation quality measures shared by every method (evaluated on held-out data).

``class_distance_ratio`` is the metafeature measure of the Associated Learning thesis (§3.3):
a layer whose classes sit far apart relative to their spread has a high inter/intra ratio.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


@jax.jit
def _pairwise_mean_distance(x: jax.Array) -> jax.Array:
  """Mean Euclidean distance over the n(n−1) ordered pairs of distinct rows of x (n, d)."""
  squared = jnp.sum(x * x, axis=1)
  d2 = squared[:, None] + squared[None, :] - 2.0 * x @ x.T
  distances = jnp.sqrt(jnp.maximum(d2, 0.0)) * (1.0 - jnp.eye(len(x)))
  return jnp.sum(distances) / jnp.maximum(len(x) * (len(x) - 1), 1)


def class_distance_ratio(features, labels) -> dict[str, float]:
  """Inter-class and intra-class distances of ``features`` (N, ...) with ``labels`` (N,).

  intra = mean pairwise distance within a class, averaged over the classes present (classes
  with one example are skipped); inter = mean pairwise distance between the class centroids;
  ratio = inter / intra. Distances are Euclidean on the flattened features, in float32.
  """
  x = np.asarray(features, np.float32).reshape(len(features), -1)
  labels = np.asarray(labels)
  if len(x) != len(labels):
    raise ValueError(f'{len(x)} feature rows but {len(labels)} labels')
  classes = [c for c in np.unique(labels) if np.sum(labels == c) > 1]
  if len(classes) < 2:
    raise ValueError('the distance ratio needs at least two classes with two examples each')
  intra = float(np.mean([_pairwise_mean_distance(jnp.asarray(x[labels == c]))
                         for c in classes]))
  centroids = np.stack([x[labels == c].mean(axis=0) for c in classes])
  inter = float(_pairwise_mean_distance(jnp.asarray(centroids)))
  return {'inter': inter, 'intra': intra, 'ratio': inter / max(intra, 1e-30)}
