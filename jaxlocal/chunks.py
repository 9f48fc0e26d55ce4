"""Sums over a batch in chunks, one chunk after another: the memory of a reduction's operands
bounded by a chunk's, for XLA backends (XLA:CPU) that materialise those operands in full."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxlocal.ordering import after
from jaxlocal.precision import as_bits, from_bits


def sum_over_batch_chunks(fn, arrays, rows: int):
  """Σ over chunks c of ``fn(*chunks_c, fresh_c)``: the arrays' axis 0 cut into chunks of at most
  ``rows`` rows, as even as the batch allows, summed in a ``lax.scan``.

  Every chunk goes through the loop, so XLA computes no chunk outside it (a slice of a fusion it
  would recompute from the fusion's inputs, keeping them alive through the loop): the last chunk
  ends at the batch's end and repeats rows of the one before, which ``fresh_c`` (a (rows,) bool,
  false on repeated rows) lets ``fn`` leave out (:func:`keep_rows`). With a single chunk,
  ``fn(*arrays, None)``.
  """
  b = arrays[0].shape[0]
  chunks = -(-b // max(1, min(b, rows)))
  if chunks == 1:
    return fn(*arrays, None)
  size = -(-b // chunks)  # the last chunk repeats fewer than `chunks` rows of its predecessor

  shapes = jax.eval_shape(fn, *(a[:size] for a in arrays), jnp.ones((size,), bool))
  # The zeros the sum starts from, made once the first operand exists: XLA:CPU otherwise makes
  # every loop's zeros at the start of the step and holds them (22 MiB of later blocks' kernel
  # gradients at the peak of a VGG8B pred step). Tied to the first operand, not the last: a
  # last operand (an output gradient) is often a fusion, whose inputs the tie would keep alive.
  total = after(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes),
                arrays[0][(0,) * arrays[0].ndim])
  # Narrow floats enter the loop as unsigned integers of their width, each chunk bitcast back:
  # XLA:CPU computes bfloat16 operations in float32 and hoisted the conversion of an operand
  # the loop only slices out of the loop, a float32 copy of all of it alive through the loop
  # (VGG8B's 32 × 32 × 256 output gradient, 128 MiB at the peak of a bfloat16 pred step).
  dtypes = [a.dtype for a in arrays]
  arrays = [as_bits(a) for a in arrays]

  def chunk(total, c):
    start = jnp.minimum(c * size, b - size)
    fresh = start + jnp.arange(size) >= c * size  # rows no earlier chunk summed
    parts = [from_bits(lax.dynamic_slice_in_dim(a, start, size, axis=0), dtype)
             for a, dtype in zip(arrays, dtypes)]
    return jax.tree.map(jnp.add, total, fn(*parts, fresh)), None

  return lax.scan(chunk, total, jnp.arange(chunks))[0]


def map_over_batch_chunks(fn, x: jax.Array, rows: int):
  """``fn(x)`` for an ``fn`` that treats the rows (axis 0) of x independently, computed on chunks
  of at most ``rows`` rows one after another (``lax.map``) and concatenated: the memory of fn's
  intermediates (e.g. a float32 copy of a bfloat16 x) bounded by a chunk's. x enters the loop
  as bits (:func:`jaxlocal.precision.as_bits`), so XLA:CPU does not convert all of it at once.
  """
  if rows >= x.shape[0]:
    return fn(x)
  return lax.map(lambda row: fn(from_bits(row, x.dtype)[None])[0], as_bits(x), batch_size=rows)


def keep_rows(x: jax.Array, fresh) -> jax.Array:
  """x with the rows (axis 0) where ``fresh`` is false set to 0; x itself for ``fresh=None``."""
  if fresh is None:
    return x
  return jnp.where(fresh.reshape((-1,) + (1,) * (x.ndim - 1)), x, jnp.zeros((), x.dtype))
