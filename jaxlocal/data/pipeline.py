"""Index-based batching: shuffled training batches inside jit, padded evaluation batches outside."""

from __future__ import annotations

from collections.abc import Iterator

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np


def epoch_permutation(key, num_examples: int) -> jax.Array:
  """A random order of the training set: int32 (num_examples,)."""
  return jax.random.permutation(key, num_examples).astype(jnp.int32)


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
