"""The 2-D convolution every conv layer here uses: XLA's, with a faster kernel gradient on CPU.

XLA's CPU backend differentiates a convolution with respect to its kernel by a "backprop-filter"
convolution that runs ~9× slower than the forward one (6.4 vs 59 GFLOP/s on 2 cores for a
(32, 32, 32, 128) input and a 3×3×128×256 kernel, ``benchmarks/conv_kernel_grad.py``), so the
kernel gradients dominate a VGG step there. The same gradient is a sum over the kernel's taps of matmuls,

    ∂L/∂W[i, j] = Σ_{b,h,w} x̃[b, s·h + i, s·w + j, :]ᵀ ∂L/∂y[b, h, w, :]    (x̃: x padded, s: stride),

which runs at matmul speed (7× faster on the shape above). :func:`conv` computes its kernel
gradient that way on CPU and by XLA's own convolution elsewhere (cuDNN is fast at it); the
forward pass and the input gradient are XLA's on every platform.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

NHWC = ('NHWC', 'HWIO', 'NHWC')

Padding = tuple[tuple[int, int], tuple[int, int]]


def _xla_conv(x, kernel, strides, padding, precision):
  return lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=NHWC,
                                  precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv(x, kernel, strides: tuple[int, int], padding: Padding, precision):
  return _xla_conv(x, kernel, strides, padding, precision)


def _conv_forward(x, kernel, strides, padding, precision):
  return _xla_conv(x, kernel, strides, padding, precision), (x, kernel)


def _conv_backward(strides, padding, precision, residuals, dy):
  x, kernel = residuals
  (dx,) = jax.vjp(lambda x_: _xla_conv(x_, kernel, strides, padding, precision), x)[1](dy)
  d_kernel = lax.platform_dependent(
      x, dy, kernel,
      cpu=functools.partial(kernel_grad_by_matmuls, strides=strides, padding=padding,
                            precision=precision),
      default=functools.partial(kernel_grad_by_xla, strides=strides, padding=padding,
                                precision=precision))
  return dx, d_kernel


_conv.defvjp(_conv_forward, _conv_backward)


def kernel_grad_by_xla(x, dy, kernel, *, strides, padding, precision=None):
  """∂L/∂W of ``conv(x, kernel)`` given dy = ∂L/∂y, by XLA's backprop-filter convolution."""
  return jax.vjp(lambda k: _xla_conv(x, k, strides, padding, precision), kernel)[1](dy)[0]


def kernel_grad_by_matmuls(x, dy, kernel, *, strides, padding, precision=None):
  """∂L/∂W of ``conv(x, kernel)`` given dy = ∂L/∂y, as one matmul per kernel row (module doc).

  x: (B, H, W, Cin), dy: (B, H', W', Cout), kernel: (kh, kw, Cin, Cout) (only its shape and
  dtype are used). Row i's kw shifted copies of x sit side by side, (B, H', W', kw·Cin), and
  contract with dy over B, H', W'. The rows run one after another (``lax.map``), so one row's
  copies are alive at a time: about kw + 4 inputs of temporary memory in all (7 for 3×3).
  Unrolled rows let XLA:CPU keep all of them alive (12 inputs; a whole VGG8B step then held
  2–2.8× the temporary memory of XLA's own kernel gradient); one matmul per tap was up to 1.6×
  slower. Accumulates in float32 and returns the kernel's dtype.
  """
  kh, kw = kernel.shape[:2]
  (sh, sw), (ph, pw) = strides, padding
  x = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (*ph, 0), (*pw, 0), (0, 0, 0)))
  b, ho, wo, _ = dy.shape
  band_height = sh * (ho - 1) + 1

  def row(i):  # (kw·Cin, Cout): the gradient of kernel row i
    band = lax.dynamic_slice_in_dim(x, i, band_height, axis=1)  # the input rows row i reads
    taps = [lax.slice(band, (0, 0, j, 0), (b, band_height, j + sw * (wo - 1) + 1, x.shape[3]),
                      (1, sh, sw, 1)) for j in range(kw)]  # each (B, H', W', Cin)
    return jnp.einsum('bhwk,bhwd->kd', jnp.concatenate(taps, -1), dy, precision=precision,
                      preferred_element_type=jnp.float32)

  return lax.map(row, jnp.arange(kh)).reshape(kernel.shape).astype(kernel.dtype)


def conv(x: jax.Array, kernel: jax.Array, strides: Sequence[int] = (1, 1),
         padding: str | Sequence[tuple[int, int]] = 'SAME', precision=None) -> jax.Array:
  """NHWC convolution: x (B, H, W, Cin) * kernel (kh, kw, Cin, Cout) -> (B, H', W', Cout).

  ``padding`` is 'SAME', 'VALID' or ((top, bottom), (left, right)), as in
  ``lax.conv_general_dilated``; values equal that function's, and so do gradients (to float
  rounding: the CPU kernel gradient sums in a different order).
  """
  strides = tuple(int(s) for s in strides)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(x.shape[1:3], kernel.shape[:2], strides, padding)
  padding = tuple((int(lo), int(hi)) for lo, hi in padding)
  return _conv(x, kernel, strides, padding, precision)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         precision=None):
  """Drop-in for ``lax.conv_general_dilated`` (``flax.linen.Conv(conv_general_dilated=…)``).

  Plain NHWC/HWIO convolutions (no dilation, one feature group) go through :func:`conv`;
  anything else through ``lax.conv_general_dilated`` unchanged.
  """
  plain = (all(d == 1 for d in lhs_dilation or (1,)) and all(d == 1 for d in rhs_dilation or (1,))
           and feature_group_count == 1 and lhs.ndim == 4
           and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
           == lax.conv_dimension_numbers(lhs.shape, rhs.shape, NHWC))
  if plain:
    return conv(lhs, rhs, window_strides, padding, precision)
  return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                  dimension_numbers, feature_group_count, precision=precision)
