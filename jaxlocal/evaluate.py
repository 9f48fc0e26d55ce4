"""Evaluation: pure functions of (state, data) that return metrics.

- :func:`make_eval_step` / :func:`evaluate`: a learner's ``eval_step`` over a whole split, in
  batches, as means over its examples (what the loop records after every epoch);
- :func:`class_distance_ratio`: the metafeature measure of the Associated Learning thesis
  (§3.3): a layer whose classes sit far apart relative to their spread has a high inter/intra
  ratio.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxlocal import data as data_lib
from jaxlocal.blocks import Learner
from jaxlocal.data.augment import Augment
from jaxlocal.parallel.mesh import DATA, MeshSpec, batch_sharded, put, replicated


def mean_over(sums: dict, count: float) -> dict:
  """Summed metrics (on the device) as host floats divided by ``count``."""
  return {k: float(v) / count for k, v in jax.device_get(sums).items()}


def make_eval_step(learner: Learner, dataset: data_lib.Dataset, augment: Augment = Augment(),
                   mesh=None):
  """``eval(state, x, y, mask) -> metrics × number of real examples`` (sums over batches).

  Test images are only normalised, unless the learner trains on two views (``augment.views``
  2): then they get the training views, drawn from a fixed key so every epoch sees the same.
  On a ``mesh`` the batch is split along ``data`` when its size allows.
  """
  views = dataclasses.asdict(augment) if augment.views > 1 else {}
  key = jax.random.key(0) if views else None
  mesh = mesh or MeshSpec().make()

  def evaluate(state, x, y, mask):
    if len(x) % mesh.shape[DATA] == 0:
      x, y, mask = jax.lax.with_sharding_constraint((x, y, mask), batch_sharded(mesh))
    images = data_lib.preprocess(key, x, mean=dataset.mean, std=dataset.std, **views)
    metrics = learner.eval_step(state, {'image': images, 'label': y, 'mask': mask})
    return jax.tree.map(lambda m: m * jnp.sum(mask), metrics)

  rep = replicated(mesh)
  return jax.jit(evaluate, in_shardings=rep, out_shardings=rep)


def evaluate(eval_step, state, x, y, batch_size: int, sharding=None) -> dict:
  """Every eval metric as a mean over the whole of (x, y), batches placed by ``sharding``."""
  sums = None
  for batch in data_lib.eval_batches(x, y, batch_size):
    batch_sums = eval_step(state, *(put(batch, sharding) if sharding else batch))
    sums = batch_sums if sums is None else jax.tree.map(jnp.add, sums, batch_sums)
  return mean_over(sums, len(x))


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
