"""Work over a batch in chunks, one chunk after another: the memory of a computation's operands
and intermediates bounded by a chunk's, for XLA backends (XLA:CPU) that materialise them in full.

The loop cuts axis 0 into chunks as even as the batch allows and runs every chunk inside it, so
XLA computes no chunk outside it (a slice of a fusion it would recompute from the fusion's
inputs, keeping them alive through the loop): the last chunk ends at the batch's end and repeats
rows of the one before. Narrow floats enter the loop as bits
(:func:`jaxlocal.precision.as_bits`): XLA:CPU computes bfloat16 in float32, and hoisted the
conversion of an operand the loop only slices out of the loop, a float32 copy of all of it alive
through the loop (VGG8B's 32 × 32 × 256 output gradient, 128 MiB at the peak of a bfloat16 pred
step).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxlocal.ordering import after
from jaxlocal.precision import as_bits, from_bits


def sum_over_batch_chunks(fn, arrays, rows: int):
  """Σ over chunks c of ``fn(*chunks_c, fresh_c)``: the arrays' axis 0 cut into chunks of at most
  ``rows`` rows, as even as the batch allows, summed in a ``lax.scan``.

  ``fresh_c``, a (rows,) bool, is false on the rows the last chunk repeats, for ``fn`` to leave
  them out of the sum (:func:`keep_rows`). With a single chunk, ``fn(*arrays, None)``.
  """
  b = arrays[0].shape[0]
  chunks = -(-b // max(1, min(b, rows)))
  if chunks == 1:
    return fn(*arrays, None)
  size = -(-b // chunks)  # the last chunk repeats fewer than `chunks` rows of its predecessor
  # Tied to the first operand, not the last: a last operand (an output gradient) is often a
  # fusion, whose inputs the tie would keep alive.
  total = zeros_after(jax.eval_shape(fn, *(a[:size] for a in arrays), jnp.ones((size,), bool)),
                      arrays[0])
  bits = [as_bits(a) for a in arrays]

  def chunk(total, c):
    start = jnp.minimum(c * size, b - size)
    parts = [from_bits(lax.dynamic_slice_in_dim(bit, start, size, axis=0), a.dtype)
             for bit, a in zip(bits, arrays)]
    fresh = start + jnp.arange(size) >= c * size  # rows no earlier chunk summed
    return jax.tree.map(jnp.add, total, fn(*parts, fresh)), None

  return lax.scan(chunk, total, jnp.arange(chunks))[0]


def zeros_after(shapes, x: jax.Array):
  """Zeros of ``shapes`` (a pytree of shape-dtype structs), made once x exists: a loop's
  accumulator or output buffer. Untied, XLA:CPU makes every loop's zeros at the start of the
  step and holds them to its end (22 MiB of later blocks' kernel gradients at the peak of a
  VGG8B pred step). The tie is to x's first element, which must be data: a padded array's corner
  is the pad value, a constant XLA folds, and the tie with it."""
  return after(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes), x[(0,) * x.ndim])


def keep_rows(x: jax.Array, fresh) -> jax.Array:
  """x with the rows (axis 0) where ``fresh`` is false set to 0; x itself for ``fresh=None``."""
  if fresh is None:
    return x
  return jnp.where(fresh.reshape((-1,) + (1,) * (x.ndim - 1)), x, jnp.zeros((), x.dtype))
