"""Index-based batching: shuffled training batches inside jit, padded evaluation batches outside."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np


def epoch_permutation(key, num_examples: int) -> jax.Array:
  """A random order of the training set: int32 (num_examples,)."""
  return jax.random.permutation(key, num_examples).astype(jnp.int32)


def class_limited_permutation(key, labels: jax.Array, num_classes: int,
                              classes_per_batch: int, batch_size: int) -> jax.Array:
  """An epoch order whose batches each hold about ``classes_per_batch`` classes: int32 (N,).

  The reference's ``--classes-per-batch`` (CIFAR-100 sim/predsim: 20 of 100 classes), which
  makes each batch's similarity target hold many same-class pairs. Classes are dealt at random
  into ceil(K / classes_per_batch) groups; examples are ordered by group, randomly within it;
  then the full batches are shuffled. Every example still appears once per epoch; only the
  batches that straddle two groups mix their classes.
  """
  k_groups, k_within, k_batches = jax.random.split(key, 3)
  num_groups = -(-num_classes // classes_per_batch)
  group_of_class = jax.random.permutation(k_groups, num_classes) % num_groups
  rank = group_of_class[labels] + jax.random.uniform(k_within, labels.shape)
  order = jnp.argsort(rank).astype(jnp.int32)
  full = (len(order) // batch_size) * batch_size
  batches = jax.random.permutation(k_batches, order[:full].reshape(-1, batch_size))
  return jnp.concatenate([batches.reshape(-1), order[full:]])


@dataclasses.dataclass(frozen=True)
class BatchOrder:
  """How an epoch's training examples are ordered into batches.

  ``classes_per_batch`` > 0 uses :func:`class_limited_permutation` during the first
  ``until_epoch`` epochs (all of them when ``until_epoch`` is 0); otherwise a uniform shuffle.
  """

  classes_per_batch: int = 0
  until_epoch: int = 0

  def __post_init__(self):
    if self.classes_per_batch < 0 or self.until_epoch < 0:
      raise ValueError(f'classes_per_batch and its until_epoch must be >= 0, got '
                       f'{self.classes_per_batch} and {self.until_epoch}')

  def permutation(self, key, labels: jax.Array, *, epoch: int, num_classes: int,
                  batch_size: int) -> jax.Array:
    """The order of epoch ``epoch`` (1-based) of the examples with ``labels``."""
    limited = self.classes_per_batch and (not self.until_epoch or epoch <= self.until_epoch)
    if not limited:
      return epoch_permutation(key, len(labels))
    if self.classes_per_batch >= num_classes:
      raise ValueError(f'classes_per_batch={self.classes_per_batch} must be below the '
                       f'{num_classes} classes of the dataset (0 turns it off)')
    return _class_limited(key, labels, num_classes, self.classes_per_batch, batch_size)


def batch_indices(perm, step, batch_size: int) -> jax.Array:
  """int32 (batch_size,): perm[step * batch_size : (step + 1) * batch_size]; ``step`` may be traced.

  ``step`` must be below ``steps_per_epoch`` (dynamic_slice clamps out-of-range starts).
  """
  return lax.dynamic_slice(jnp.asarray(perm, jnp.int32), (step * batch_size,), (batch_size,))


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  """Full batches per epoch: num_examples // batch_size (the remainder is dropped)."""
  if batch_size <= 0:
    raise ValueError(f'batch_size={batch_size} must be positive')
  if batch_size > num_examples:
    raise ValueError(f'batch_size={batch_size} exceeds the {num_examples} training examples; '
                     'lower batch_size or use more training examples')
  return num_examples // batch_size


def eval_batches(x, y, batch_size: int) -> Iterator[tuple]:
  """Yield (x_batch (B, ...), y_batch (B,), mask float32 (B,)) covering every example once.

  The last batch is padded to ``batch_size`` by repeating the final example, with mask 0 on the
  padding, so a jitted eval step compiles once; weight per-example results by ``mask``.
  """
  if batch_size <= 0:
    raise ValueError(f'batch_size={batch_size} must be positive')
  if len(x) != len(y):
    raise ValueError(f'x has {len(x)} examples but y has {len(y)}; pass matching arrays')
  n = len(x)
  for start in range(0, n, batch_size):
    idx = np.arange(start, start + batch_size)
    mask = idx < n
    idx = np.minimum(idx, n - 1)
    yield x[idx], y[idx], mask.astype(np.float32)


_class_limited = jax.jit(class_limited_permutation, static_argnums=(2, 3, 4))
