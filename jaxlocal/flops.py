"""FLOPs of a step counted from its jaxpr, and the device peaks they are compared with.

XLA's ``compiled.cost_analysis()`` does not count the convolutions that XLA:GPU hands to cuDNN
as custom calls, so its FLOP figure for a VGG step on a GPU is two orders of magnitude short.
Here the step is traced (``jax.make_jaxpr``, no compilation) and every ``dot_general`` and
``conv_general_dilated`` in it is counted, including those inside sub-jaxprs (``jit``,
``custom_vjp`` / ``custom_jvp`` calls, ``remat``, ``scan``, ``while``, ``cond``, ``shard_map``):
the forward pass, the backward pass and every head, exactly as the step runs them. Elementwise
work, reductions and pooling are not counted (they are a small share of a conv network's
arithmetic and run at memory speed, not at the matrix peak).

One multiply-add is 2 FLOPs. A convolution counts 2 · |output| · (kernel window) · (input
features per group), so padded borders and the zeros of an input-dilated (transposed)
convolution count as work, as the hardware does them too.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
from jax._src.interpreters import partial_eval as pe  # dce_jaxpr: no public equivalent
from jax.extend import core as jex_core

# Dense matrix peaks in TFLOP/s by device kind, from the vendors' datasheets (SXM parts, no
# sparsity): 'bfloat16' for bf16 inputs, 'float32' for float32 inputs at JAX's default matmul
# precision, which NVIDIA GPUs run as TF32 (true float32, `jax_default_matmul_precision='highest'`,
# is about 67 TFLOP/s on an H100/H200 and 19.5 on an A100: pass `override` then).
PEAK_TFLOPS = {
    'H100': {'bfloat16': 989.0, 'float32': 495.0},
    'H200': {'bfloat16': 989.0, 'float32': 495.0},
    'A100': {'bfloat16': 312.0, 'float32': 156.0},
}


def peak_tflops(compute_dtype: str, device_kind: str | None = None,
                override: float = 0.0) -> float | None:
  """The dense matrix peak (TFLOP/s) for ``compute_dtype`` ('float32' or 'bfloat16') on
  ``device_kind`` (default: ``jax.devices()[0].device_kind``, e.g. 'NVIDIA H200'); ``override``
  > 0 wins. ``None`` for a device the table does not know (a CPU, say)."""
  if override > 0:
    return float(override)
  if compute_dtype not in ('float32', 'bfloat16'):
    raise ValueError(f"compute_dtype {compute_dtype!r}: use 'float32' or 'bfloat16'")
  kind = device_kind if device_kind is not None else jax.devices()[0].device_kind
  for name, peaks in PEAK_TFLOPS.items():
    if name in kind.upper():
      return peaks[compute_dtype]
  return None


def _dot_general_flops(eqn) -> float:
  (contracting, _), _ = eqn.params['dimension_numbers']
  lhs = eqn.invars[0].aval.shape
  out = eqn.outvars[0].aval.shape
  return 2.0 * math.prod(out) * math.prod(lhs[d] for d in contracting)


def _conv_flops(eqn) -> float:
  rhs = eqn.invars[1].aval.shape
  out = eqn.outvars[0].aval.shape
  spec = eqn.params['dimension_numbers'].rhs_spec  # (out feature, in feature, *spatial)
  window = math.prod(rhs[d] for d in spec[2:])
  return 2.0 * math.prod(out) * rhs[spec[1]] * window


_COUNTED = {'dot_general': _dot_general_flops, 'conv_general_dilated': _conv_flops}


def _sub_jaxprs(value):
  """The jaxprs held by one equation parameter (a jaxpr, a closed jaxpr, or a tuple of them)."""
  if isinstance(value, jex_core.ClosedJaxpr):
    return [value.jaxpr]
  if isinstance(value, jex_core.Jaxpr):
    return [value]
  if isinstance(value, (tuple, list)):
    return [j for v in value for j in _sub_jaxprs(v)]
  return []


def jaxpr_flops(jaxpr) -> float:
  """FLOPs of the matrix products and convolutions of ``jaxpr`` (a ``Jaxpr`` or ``ClosedJaxpr``)
  that its outputs depend on.

  Dead code is removed first (``dce_jaxpr``, into sub-jaxprs), as XLA removes it: a custom VJP
  traces work whose results it drops (this library's conv backward traces the forward
  convolution again inside ``jax.vjp``, and the input gradient of a block whose input is
  stop-gradiented), and counting it would overstate a VGG8B training step 1.7× (glob) to
  1.9× (predsim).

  ``scan`` bodies count ``length`` times; of ``cond``'s branches the costliest counts (an upper
  bound when they differ); a ``while`` body and its condition count once, since the trip count
  is only known at run time (a lower bound then; the VGG steps hold no ``while``); every other
  sub-jaxpr (``jit``, ``custom_vjp_call``, ``custom_jvp_call``, ``remat``, …) counts once per
  execution of its equation, a ``shard_map`` body included: the FLOPs of one device's share.
  """
  if isinstance(jaxpr, jex_core.ClosedJaxpr):
    jaxpr = jaxpr.jaxpr
  jaxpr, _ = pe.dce_jaxpr(jaxpr, used_outputs=True)
  return _live_flops(jaxpr)


def _live_flops(jaxpr) -> float:
  total = 0.0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name in _COUNTED:
      total += _COUNTED[name](eqn)
    elif name == 'cond':
      total += max((_live_flops(b) for b in _sub_jaxprs(eqn.params['branches'])), default=0.0)
    else:
      inner = sum(_live_flops(j) for v in eqn.params.values() for j in _sub_jaxprs(v))
      total += inner * (eqn.params['length'] if name == 'scan' else 1)
  return total


def step_flops(fn: Callable, *args, **kwargs) -> float:
  """FLOPs of one call ``fn(*args, **kwargs)`` (jitted or not), counted from its jaxpr
  (:func:`jaxpr_flops`); ``args`` may be arrays or ``jax.ShapeDtypeStruct``s. Traces, does not
  compile or run."""
  return jaxpr_flops(jax.make_jaxpr(fn)(*args, **kwargs))
