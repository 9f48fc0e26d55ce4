"""Evaluation: pure functions of (state, data) that return metrics.

- :func:`make_eval_step` / :func:`evaluate`: a learner's ``eval_step`` over a whole split, in
  batches, as means over its examples (what the loop records after every epoch);
- :func:`class_distance_ratio`: the metafeature measure of the Associated Learning thesis
  (§3.3): a layer whose classes sit far apart relative to their spread has a high inter/intra
  ratio; :func:`metafeatures` measures it on every block of a learner's ``features``;
- :class:`Evaluator`: a named evaluation ``fn(state, data) -> record`` that a phase runs when it
  is complete, its record written by the loop (:func:`jaxlocal.train.write_evaluation`), e.g.
  :func:`robustness`;
- :func:`probe_features`: a frozen encoder's features of a dataset, the data of a linear probe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlocal import data as data_lib
from jaxlocal.blocks import Learner
from jaxlocal.data.augment import Augment
from jaxlocal.data.features import feature_dataset, map_features
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


@dataclasses.dataclass(frozen=True)
class Evaluator:
  """An evaluation run once a phase is complete: ``fn(state, data) -> record`` (a JSON-able
  dict, nested dicts allowed) of the phase's final state on the phase's data.

  The loop (:func:`jaxlocal.train.write_evaluation`) writes the record to ``file`` in the
  workdir (default ``<name>.json``), prints ``summary(record)`` (default: the flattened
  record) and appends it to ``metrics.jsonl`` tagged with the evaluator's name.
  """

  name: str
  fn: Callable[[Any, data_lib.Dataset], dict]
  file: str = ''
  summary: Callable[[dict], str] | None = None

  @property
  def filename(self) -> str:
    return self.file or f'{self.name}.json'


def metafeatures(learner: Learner, state, dataset: data_lib.Dataset,
                 max_examples: int) -> dict[str, dict[str, float]]:
  """``{block name: class_distance_ratio}`` of every representation in
  ``learner.features(state, x)`` on the first ``max_examples`` normalised test images."""
  if learner.features is None:
    raise ValueError('this learner offers no features(state, x) to measure')
  n = min(max_examples, len(dataset.x_test))
  x = data_lib.preprocess(None, dataset.x_test[:n], mean=dataset.mean, std=dataset.std)
  features = learner.features(state, x)
  names = learner.block_names or tuple(f'block{i + 1}' for i in range(len(features)))
  return {name: class_distance_ratio(h, dataset.y_test[:n]) for name, h in zip(names, features)}


def probe_features(learner: Learner, state, dataset: data_lib.Dataset,
                   target: data_lib.Dataset, layers: Sequence[int], *,
                   deform: Augment = Augment(), deform_seed: int = 0) -> data_lib.Dataset:
  """``target``'s images as the concatenated, flattened ``learner.features`` of ``layers``
  (computed once; images normalised as ``dataset``, the encoder's own data), float32
  (N, 1, 1, D).

  With a ``deform`` other than the identity the result also holds ``extra_tests['deformed']``:
  the features of the test images deformed by ``deform`` (keys from ``deform_seed``). Pure: the
  same arguments give the same dataset.
  """
  def probed(x, key=None, **views):
    images = data_lib.preprocess(key, x, mean=dataset.mean, std=dataset.std, **views)
    hs = learner.features(state, images)
    return jnp.concatenate([hs[i].reshape(len(x), -1) for i in layers], axis=1)

  result = feature_dataset(dataclasses.replace(target, extra_tests={}), probed,
                           source=f'{target.source} → encoder layers {tuple(layers)}')
  if deform != Augment():
    key = jax.random.key(deform_seed)
    deformed = map_features(lambda x: probed(x, key, **dataclasses.asdict(deform)),
                            target.x_test)
    result = dataclasses.replace(result, extra_tests={'deformed': (deformed, target.y_test)})
  return result


def robustness(probe: Learner, deform: dict, batch_size: int) -> Evaluator:
  """Evaluator 'robustness': each probe's accuracy (``<block>/accuracy`` of ``probe``'s eval
  metrics) on the phase data's ``extra_tests['deformed']``, with the ``deform`` that made it;
  written to ``robustness.json``."""
  def fn(state, data):
    if 'deformed' not in data.extra_tests:
      raise ValueError('the robustness evaluator needs a deformed test set '
                       "(Dataset.extra_tests['deformed']); set probe.deform")
    x, y = data.extra_tests['deformed']
    metrics = evaluate(make_eval_step(probe, data), state, x, y, batch_size)
    return {'deform': dict(deform),
            'accuracy': {k[:-len('/accuracy')]: v for k, v in metrics.items()
                         if k.endswith('/accuracy')}}

  return Evaluator('robustness', fn, summary=lambda r: 'probe accuracy on the deformed test set: '
                   + ' '.join(f'{k}={v:.4f}' for k, v in r['accuracy'].items()))
