"""Mixed precision: the dtype the layers and heads compute in, apart from the parameters and the
losses.

With ``compute_dtype='bfloat16'`` every matmul and convolution of a step runs on bfloat16
inputs, and so do their gradients: the blocks' forward passes
(:func:`jaxlocal.blocks.apply_block`, which hands the next block its output in bfloat16) and the
heads the objectives train (pred head, sim projection, bpf projection, SSL embedding heads, SAE
decoders, AL bridges, through :func:`apply_module`). One mechanism carries the dtype to the
heads: a block's ``compute_dtype`` (set for every block by :func:`jaxlocal.blocks.make_learner`)
is the policy :func:`jaxlocal.blocks.block_objective` runs the block's objective under
(:func:`computing_in`), and :func:`apply_module` without a ``dtype`` follows it. So an objective
computes its heads in the learner's dtype however the learner was built (from a config or by
calling ``make_learner`` directly), and takes no dtype of its own; an objective written by hand
applies its heads with :func:`apply_module` to follow it.

Parameters are cast on the way in (their gradients arrive in float32) and what an objective
sees is cast back to float32, so these stay float32: parameters, optimiser states, BatchNorm
statistics (Flax reduces them in float32), the similarity matrix's std, centring,
normalisation and product, and every loss and its reduction.

Accumulation: XLA sums bfloat16 products in float32 (cuBLAS / cuDNN on GPUs, and the CPU
backend; ``tests/test_precision.py`` checks it on the platform it runs on) and rounds the result
to bfloat16 once. ``preferred_element_type=float32`` would skip that one rounding, but JAX
differentiates it into float32 convolutions and matmuls (the cotangent stays float32), which
would put the backward pass back in float32. The heads' average pools sum in float32
(:mod:`jaxlocal.models.heads`).

Explicit update rules (Hebbian, DTP) keep float32 throughout. A dtype of None or float32 leaves
every computation exactly as written.
"""

from __future__ import annotations

import contextlib
import contextvars

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


def is_reduced(dtype) -> bool:
  """Whether ``dtype`` (None = float32) asks for computation below float32."""
  return dtype is not None and jnp.dtype(dtype) != jnp.float32


def cast_floating(tree, dtype):
  """Every floating-point leaf of ``tree`` as ``dtype``; integer and key leaves unchanged."""
  def cast(x):
    return x.astype(dtype) if jnp.issubdtype(jnp.result_type(x), jnp.floating) else x
  return jax.tree.map(cast, tree)


def like(tree, reference):
  """``tree`` cast leaf by leaf to the dtypes of ``reference`` (e.g. updated BatchNorm
  statistics back to float32)."""
  return jax.tree.map(lambda x, r: x.astype(r.dtype), tree, reference)


def as_bits(x: jax.Array) -> jax.Array:
  """A float narrower than float32 bitcast to the unsigned integer of its width (e.g. bfloat16
  -> uint16); anything else unchanged. :func:`from_bits` undoes it.

  For XLA:CPU, which computes bfloat16 operations in float32: an array a loop only slices, held
  as bits, stays at its own width; as a float, XLA:CPU converted all of it to float32 before the
  loop (the conversion of a loop invariant, hoisted), twice its size, alive through the loop
  (:mod:`jaxlocal.chunks`). The bitcast moves no data, though XLA:CPU may write a fused
  producer's output out once more at its own width to make it."""
  if jnp.issubdtype(x.dtype, jnp.floating) and x.dtype.itemsize < 4:
    return jax.lax.bitcast_convert_type(x, jnp.dtype(f'uint{8 * x.dtype.itemsize}'))
  return x


def from_bits(x: jax.Array, dtype) -> jax.Array:
  """The ``dtype`` array whose :func:`as_bits` is x."""
  return x if x.dtype == dtype else jax.lax.bitcast_convert_type(x, dtype)


# The dtype the objective being traced computes its heads in (None: float32).
_POLICY = contextvars.ContextVar('jaxlocal_compute_dtype', default=None)


@contextlib.contextmanager
def computing_in(dtype):
  """Within the ``with``, :func:`apply_module` calls without a ``dtype`` compute in ``dtype``
  (None: float32). :func:`jaxlocal.blocks.block_objective` runs every block's objective under
  its block's ``compute_dtype``. The policy applies while a function is traced: a function
  jitted on its own inside an objective keeps the policy of its first trace."""
  token = _POLICY.set(dtype)
  try:
    yield
  finally:
    _POLICY.reset(token)


def current_dtype():
  """The dtype :func:`apply_module` computes in when given none (None: float32)."""
  return _POLICY.get()


def apply_module(module, params, *inputs, dtype=None, **kwargs):
  """``module.apply({'params': params}, *inputs, **kwargs)`` computing in ``dtype``, by default
  that of the policy in force (:func:`computing_in`: the block's ``compute_dtype`` while its
  objective runs).

  The policy every head follows: ``params`` and the floating ``inputs`` are cast to ``dtype``,
  the module runs (its matmuls and convolutions on ``dtype`` operands), and every floating
  output comes back as float32 for the normalisations and losses after it. A ``dtype`` of
  float32 (or None outside any policy) applies the module unchanged.
  """
  if dtype is None:
    dtype = current_dtype()
  if not is_reduced(dtype):
    return module.apply({'params': params}, *inputs, **kwargs)
  out = module.apply({'params': cast_floating(params, dtype)}, *cast_floating(inputs, dtype),
                     **kwargs)
  return cast_floating(out, jnp.float32)

