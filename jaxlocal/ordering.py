"""Ordering computations on XLA by data dependencies that change no value.

``lax.optimization_barrier`` does not order anything on XLA:CPU, which removes barriers before it
schedules; a real data dependency does. :func:`after` makes one: memory-bound code (the
block-ordered local step, a convolution's backward pass) uses it to let XLA free a tensor before
the next large one is made.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def after(x, tree):
  """``x`` (an array or a pytree of them) unchanged, bitwise, but computed after every leaf of
  ``tree``.

  ``x + c`` with ``c = -0.0`` (the exact additive identity, also for ``x = -0.0``) computed from
  a sum over every leaf, which XLA cannot fold away, since ``0 · v`` is not 0 for every float
  ``v``. ``c`` is -0.0 even when the sum is not finite (it enters only through a comparison), so a
  NaN in ``tree`` never reaches ``x``. Costs one reduction over ``tree`` and one elementwise pass
  over ``x`` (fused into x's consumers where XLA can). Leaves that are not numbers (PRNG keys,
  booleans) are neither summed nor tied: x's pass through as they are.
  """
  total = sum((jnp.sum(leaf, dtype=jnp.float32) for leaf in jax.tree.leaves(tree)
               if _numeric(leaf)), jnp.zeros((), jnp.float32))
  ties = (total == total).astype(jnp.float32)
  return jax.tree.map(lambda a: a + (ties * -0.0).astype(a.dtype) if _numeric(a) else a, x)


def _numeric(leaf) -> bool:
  """Whether a leaf takes part in :func:`after`: numbers do; PRNG keys and booleans pass as they
  are (an optimiser state may hold a key)."""
  dtype = jnp.result_type(leaf)
  return jnp.issubdtype(dtype, jnp.number)
