"""The 2-D convolution every conv layer here uses: XLA's, with a faster kernel gradient on CPU.

XLA's CPU backend differentiates a convolution with respect to its kernel by a "backprop-filter"
convolution that runs ~9× slower than the forward one (6.4 vs 59 GFLOP/s on 2 cores for a
(32, 32, 32, 128) input and a 3×3×128×256 kernel, ``benchmarks/conv_kernel_grad.py``), so the
kernel gradients dominate a VGG step there. The same gradient is a sum over the kernel's taps of matmuls,

    ∂L/∂W[i, j] = Σ_{b,h,w} x̃[b, s·h + i, s·w + j, :]ᵀ ∂L/∂y[b, h, w, :]    (x̃: x padded, s: stride),

which runs at matmul speed (7× faster on the shape above). :func:`conv` computes its kernel
gradient that way on CPU and by XLA's own convolution elsewhere (cuDNN is fast at it); the
forward pass and the input gradient are XLA's on every platform. Transposed convolutions
(``input_dilation``, DTP's inverses) get the same treatment with the roles of x and ∂L/∂y
exchanged (:func:`transposed_kernel_grad_by_matmuls`).
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from jaxlocal import chunks, ordering

NHWC = ('NHWC', 'HWIO', 'NHWC')

Padding = tuple[tuple[int, int], tuple[int, int]]


def _xla_conv(x, kernel, strides, padding, dilation, precision):
  return lax.conv_general_dilated(x, kernel, strides, padding, lhs_dilation=dilation,
                                  dimension_numbers=NHWC, precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _conv(x, kernel, strides: tuple[int, int], padding: Padding, dilation: tuple[int, int],
          precision):
  return _xla_conv(x, kernel, strides, padding, dilation, precision)


def _conv_forward(x, kernel, strides, padding, dilation, precision):
  return _xla_conv(x, kernel, strides, padding, dilation, precision), (x, kernel)


def _conv_backward(strides, padding, dilation, precision, residuals, dy):
  """The kernel gradient first, then the input gradient, ordered by :func:`ordering.after`: x
  (a residual) dies with the kernel gradient, before dx (its size) is made. XLA otherwise may
  schedule dx first and hold x, dy and dx at once. The order is carried by the kernel, not by
  dy: ``dy + c`` fuses into dy's producer, whose inputs (e.g. the sim head's whole convolution
  output) XLA then keeps alive to compute dy a second time; the kernel is small."""
  x, kernel = residuals
  if dilation == (1, 1):
    by_matmuls = functools.partial(kernel_grad_by_matmuls, strides=strides, padding=padding,
                                   precision=precision)
  else:  # strides are (1, 1): conv() allows input dilation only then
    by_matmuls = functools.partial(transposed_kernel_grad_by_matmuls, dilation=dilation,
                                   padding=padding, precision=precision)
  d_kernel = lax.platform_dependent(
      x, dy, kernel, cpu=by_matmuls,
      default=functools.partial(kernel_grad_by_xla, strides=strides, padding=padding,
                                dilation=dilation, precision=precision))
  kernel = ordering.after(kernel, d_kernel)
  (dx,) = jax.vjp(lambda x_: _xla_conv(x_, kernel, strides, padding, dilation, precision),
                  x)[1](dy)
  return dx, d_kernel


_conv.defvjp(_conv_forward, _conv_backward)


def kernel_grad_by_xla(x, dy, kernel, *, strides, padding, dilation=(1, 1), precision=None):
  """∂L/∂W of ``conv(x, kernel)`` given dy = ∂L/∂y, by XLA's backprop-filter convolution."""
  return jax.vjp(lambda k: _xla_conv(x, k, strides, padding, dilation, precision),
                 kernel)[1](dy)[0]


_MIN_PART_LENGTH = 2**14  # the shortest part of a contraction worth a matmul of its own
_CHUNK_BYTES = 2**25  # the most bytes of one kernel row's shifted input copies for one chunk


def kernel_grad_by_matmuls(x, dy, kernel, *, strides, padding, precision=None):
  """∂L/∂W of ``conv(x, kernel)`` given dy = ∂L/∂y, as one matmul per kernel row (module doc).

  x: (B, H, W, Cin), dy: (B, H', W', Cout), kernel: (kh, kw, Cin, Cout) (only its shape and
  dtype are used). Row i's kw shifted copies of x sit side by side, (B, H', W', kw·Cin), and
  contract with dy over B, H', W'. The rows run one after another (``lax.map``), so one row's
  copies are alive at a time. Unrolled rows let XLA:CPU keep all of them alive (12 inputs; a
  whole VGG8B step then held 2–2.8× the temporary memory of XLA's own kernel gradient); one
  matmul per tap was up to 1.6× slower. The batch, too, runs in chunks one after another
  (``lax.scan``, float32 sums), each chunk's row copies at most ``_CHUNK_BYTES`` (32 MiB): whole,
  one row of a 3×3, 256-channel VGG8B conv at batch 128 held its input padded and three shifted
  copies with their concatenation, 912 MiB at the peak of a predsim step
  (:func:`jaxlocal.chunks.sum_over_batch_chunks`: every chunk inside the loop, the last one's
  repeated rows masked out of dy). Within a chunk, a row's contraction over B·H'·W' that is far
  longer than its (kw·Cin, Cout) output is cut into up to 8 parts, summed at the end: XLA:CPU ran
  the single long one 2.5–3.3× slower on the 14×14 and 16×16 32 → 64 layers of the MNIST encoder
  at B = 2000. Accumulates in float32 and returns the kernel's dtype.
  """
  b, ho, wo, _ = dy.shape
  # float32's bytes whatever x's dtype: XLA:CPU makes the copies of a bfloat16 x in float32
  row_bytes = ho * wo * kernel.shape[1] * x.shape[3] * max(4, x.dtype.itemsize)
  grad = functools.partial(_kernel_grad_rows, kernel_shape=kernel.shape, strides=strides,
                           padding=padding, precision=precision)
  total = chunks.sum_over_batch_chunks(
      lambda x, dy, fresh: grad(x, chunks.keep_rows(dy, fresh)), (x, dy),
      rows=_CHUNK_BYTES // row_bytes)
  return total.reshape(kernel.shape).astype(kernel.dtype)


def _kernel_grad_rows(x, dy, *, kernel_shape, strides, padding, precision):
  """:func:`kernel_grad_by_matmuls` of one chunk of the batch, (kh, kw·Cin, Cout) float32."""
  kh, kw = kernel_shape[:2]
  (sh, sw), (ph, pw) = strides, padding
  # The rows' buffer, made from x before its padding: lax.map's is a constant XLA:CPU makes at
  # the step's start and holds to its end (9 MiB for a 3×3, 512-channel kernel).
  rows = chunks.zeros_after(
      jax.ShapeDtypeStruct((kh, kw * x.shape[3], dy.shape[3]), jnp.float32), x)
  x = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (*ph, 0), (*pw, 0), (0, 0, 0)))
  b, ho, wo, _ = dy.shape
  band_height = sh * (ho - 1) + 1

  length, outputs = b * ho * wo, kw * x.shape[3] * dy.shape[3]
  parts = next((n for n in (8, 4, 2)
                 if (b * ho) % n == 0 and n * max(outputs, _MIN_PART_LENGTH) <= length), 1)
  dy_parts = dy.reshape(parts, -1, dy.shape[3])

  def row(rows, i):  # rows[i] = (kw·Cin, Cout): the gradient of kernel row i
    band = lax.dynamic_slice_in_dim(x, i, band_height, axis=1)  # the input rows row i reads
    taps = [lax.slice(band, (0, 0, j, 0), (b, band_height, j + sw * (wo - 1) + 1, x.shape[3]),
                      (1, sh, sw, 1)) for j in range(kw)]  # each (B, H', W', Cin)
    columns = jnp.concatenate(taps, -1).reshape(parts, -1, kw * x.shape[3])
    grad = jnp.einsum('nlk,nld->nkd', columns, dy_parts, precision=precision,
                      preferred_element_type=jnp.float32).sum(0)
    return lax.dynamic_update_index_in_dim(rows, grad, i, 0), None

  return lax.scan(row, rows, jnp.arange(kh))[0]


def transposed_kernel_grad_by_matmuls(x, dy, kernel, *, dilation, padding, precision=None):
  """∂L/∂W of ``conv(x, kernel, input_dilation=dilation)`` (a transposed convolution, stride 1)
  given dy = ∂L/∂y, by :func:`kernel_grad_by_matmuls` with the roles of x and dy exchanged.

  With s the dilation and lo the low padding, y[u] = Σ_i x[(u + i − lo)/s] W[i] over the i
  that make the index whole (per spatial axis), so

    ∂L/∂W[i] = Σ_p x[p] ⊗ dy[s·p + lo − i] = Σ_p dỹ[s·p + (k − 1 − i)] ⊗ x[p]

  with dỹ = dy padded by k − 1 − lo below: the kernel gradient of the stride-s convolution of
  dỹ whose output gradient is x, its taps flipped and its channels exchanged. This never
  touches the zeros dilation inserts; XLA:CPU's own gradient did (31× slower than the forward
  transposed convolution on DTP's 8×8×64 → 16×16×32 layer at B = 2000).
  """
  kh, kw = kernel.shape[:2]
  pads = []
  for k, s, (lo, _), n_in, n_out in zip((kh, kw), dilation, padding, x.shape[1:3],
                                         dy.shape[1:3]):
    low = k - 1 - lo
    pads.append((low, max(0, s * (n_in - 1) + k - low - n_out)))
  swapped = kernel_grad_by_matmuls(dy, x, jnp.swapaxes(kernel, 2, 3), strides=dilation,
                                   padding=tuple(pads), precision=precision)
  return jnp.swapaxes(swapped[::-1, ::-1], 2, 3)


def conv(x: jax.Array, kernel: jax.Array, strides: Sequence[int] = (1, 1),
         padding: str | Sequence[tuple[int, int]] = 'SAME', precision=None,
         input_dilation: Sequence[int] = (1, 1)) -> jax.Array:
  """NHWC convolution: x (B, H, W, Cin) * kernel (kh, kw, Cin, Cout) -> (B, H', W', Cout).

  ``padding`` is 'SAME', 'VALID' or ((top, bottom), (left, right)), as in
  ``lax.conv_general_dilated``; values equal that function's, and so do gradients (to float
  rounding: the CPU kernel gradient sums in a different order). ``input_dilation`` > 1 (with
  strides 1) inserts zeros between input pixels first: the transposed convolution of
  ``nn.ConvTranspose``, i.e. ``nn.Conv(input_dilation=…)``.
  """
  strides = tuple(int(s) for s in strides)
  dilation = tuple(int(d) for d in input_dilation)
  if dilation != (1, 1) and strides != (1, 1):
    raise ValueError(f'conv takes input_dilation {dilation} only with strides (1, 1), got '
                     f'{strides}; use lax.conv_general_dilated')
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(x.shape[1:3], kernel.shape[:2], strides, padding)
  padding = tuple((int(lo), int(hi)) for lo, hi in padding)
  return _conv(x, kernel, strides, padding, dilation, precision)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         precision=None):
  """Drop-in for ``lax.conv_general_dilated`` (``flax.linen.Conv(conv_general_dilated=…)``).

  NHWC/HWIO convolutions with one feature group and no kernel dilation go through :func:`conv`:
  plain ones, and input-dilated (transposed) ones with window strides 1; anything else through
  ``lax.conv_general_dilated`` unchanged.
  """
  input_dilated = any(d != 1 for d in lhs_dilation or (1,))
  plain = (all(d == 1 for d in rhs_dilation or (1,)) and feature_group_count == 1
           and lhs.ndim == 4
           and not (input_dilated and any(s != 1 for s in window_strides))
           and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
           == lax.conv_dimension_numbers(lhs.shape, rhs.shape, NHWC))
  if plain:
    return conv(lhs, rhs, window_strides, padding, precision, lhs_dilation or (1, 1))
  return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                  dimension_numbers, feature_group_count, precision=precision)
