"""What a local objective is, and the reductions every objective shares.

A local objective is a pair of pure functions, in the spirit of optax's ``(init, update)``:

* ``init(rng, h) -> aux_params``: the parameters of the auxiliary part (a head, a projection, a
  decoder), created from an example of the block's output ``h``;
* ``loss(aux_params, h, batch) -> (loss, metrics)``: a scalar loss and a dict of scalar metrics.

``batch`` is a dict with at least ``'label'`` (int32 (B,); −1 for an unlabelled example, which
the label-based losses skip); during evaluation it also carries
``'mask'`` (float32 (B,), 0 for padding examples), which every metric must respect
(:func:`batch_mean` does).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

Metrics = dict[str, jax.Array]
LossFn = Callable[[Any, jax.Array, dict], tuple[jax.Array, Metrics]]
InitFn = Callable[[jax.Array, jax.Array], Any]


def no_aux_params(rng: jax.Array, h: jax.Array) -> dict:
  """``init`` of an objective without auxiliary parameters."""
  del rng, h
  return {}


class LocalObjective(NamedTuple):
  """A block's objective: ``loss(aux_params, h, batch) -> (loss, metrics)`` and its ``init``."""

  loss: LossFn
  init: InitFn = no_aux_params


def as_objective(objective: LocalObjective | LossFn | None) -> LocalObjective | None:
  """Accepts a plain ``(aux_params, h, batch) -> (loss, metrics)`` function as an objective."""
  if objective is None or isinstance(objective, LocalObjective):
    return objective
  if callable(objective):
    return LocalObjective(objective)
  raise TypeError(f'a local objective must be a LocalObjective or a function, got {objective!r}')


def batch_mean(values: jax.Array, batch: dict) -> jax.Array:
  """Mean of per-example ``values`` (B,) over the real (unmasked) examples of ``batch``."""
  mask = batch.get('mask')
  if mask is None:
    return jnp.mean(values)
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def labelled_mean(values: jax.Array, batch: dict) -> jax.Array:
  """Mean of per-example ``values`` (B,) over the real examples with a label: a label of −1
  marks an unlabelled example (semi-supervised training), which contributes nothing."""
  labelled = batch['label'] >= 0
  mask = batch.get('mask')
  weight = labelled.astype(jnp.float32) * (1.0 if mask is None else mask)
  return jnp.sum(jnp.where(labelled, values, 0.0) * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def cross_entropy(logits: jax.Array, batch: dict) -> jax.Array:
  """Mean softmax cross-entropy, logits (B, K) against ``batch['label']`` (B,), over the
  labelled examples."""
  per_example = optax.softmax_cross_entropy_with_integer_labels(
      logits, jnp.maximum(batch['label'], 0))
  return labelled_mean(per_example, batch)


def accuracy(logits: jax.Array, batch: dict) -> jax.Array:
  """Fraction of ``argmax(logits)`` equal to ``batch['label']``, over the labelled examples."""
  return labelled_mean((jnp.argmax(logits, -1) == batch['label']).astype(jnp.float32), batch)


def classifier(weight: float = 1.0) -> LocalObjective:
  """The network's output layer: ``weight · CE(h, y)`` where ``h`` (B, K) are its logits."""

  def loss(aux_params, logits, batch):
    del aux_params
    xent = cross_entropy(logits, batch)
    return weight * xent, {'xent': xent, 'accuracy': accuracy(logits, batch)}

  return LocalObjective(loss)
