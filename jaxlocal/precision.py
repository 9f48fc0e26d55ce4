"""Mixed precision: the dtype the layers compute in, apart from the parameters and the loss.

``compute_dtype='bfloat16'`` runs every block's forward pass (and its gradient) in bfloat16
while parameters, optimiser states and BatchNorm statistics stay float32: the parameters are
cast on the way in, so their gradients arrive in float32. Objectives receive float32
activations and compute their heads and losses in float32. Explicit update rules (Hebbian,
DTP) keep float32 throughout.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

COMPUTE_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def compute_dtype(name: str):
  """The jnp dtype named by ``config.compute_dtype``."""
  try:
    return COMPUTE_DTYPES[name]
  except KeyError:
    raise ValueError(f'unknown compute_dtype {name!r}; choose one of '
                     f'{sorted(COMPUTE_DTYPES)}') from None


def cast_floating(tree, dtype):
  """Every floating-point leaf of ``tree`` as ``dtype``; integer and key leaves unchanged."""
  def cast(x):
    return x.astype(dtype) if jnp.issubdtype(jnp.result_type(x), jnp.floating) else x
  return jax.tree.map(cast, tree)


def like(tree, reference):
  """``tree`` cast leaf by leaf to the dtypes of ``reference`` (e.g. updated BatchNorm
  statistics back to float32)."""
  return jax.tree.map(lambda x, r: x.astype(r.dtype), tree, reference)
