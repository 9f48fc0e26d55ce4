"""Auxiliary heads that read a block's output ``h``: the pred classifier, the sim projection,
the SSL embedding and the linear probe."""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlocal.models.feedback import FADense
from jaxlocal.models.layers import Conv, Dense


def pred_pool_geometry(height: int, width: int, channels: int, max_features: int):
  """Average-pool kernel and padding that bring C·H'·W' down to at most ``max_features``.

  The reference's rule (``--dim-in-decoder``): starting from a 1×1 kernel, while the flattened
  size exceeds the limit, double the kernel height, and if it still exceeds, the width too.
  Output size per axis is ceil(size / kernel), reached with symmetric zero padding counted in
  the average. Returns ``((kh, kw), (ph, pw))``; ``((1, 1), (0, 0))`` means no pooling.
  """
  kh = kw = 1
  out_h, out_w = height, width
  features = channels * out_h * out_w
  while features > max_features and kh < height:
    kh *= 2
    out_h = math.ceil(height / kh)
    features = channels * out_h * out_w
    if features > max_features:
      kw *= 2
      out_w = math.ceil(width / kw)
      features = channels * out_h * out_w
  pad_h = (kh * (out_h - height // kh)) // 2
  pad_w = (kw * (out_w - width // kw)) // 2
  return (kh, kw), (pad_h, pad_w)


def average_pool(h: jax.Array, window: tuple[int, int], padding=((0, 0), (0, 0)), *,
                 pairs_first: bool = True) -> jax.Array:
  """``nn.avg_pool`` with strides = ``window`` and padding counted in the average (a partial
  last window dropped), summing in float32 (a 64-pixel window summed in bfloat16 loses about 3
  bits); returned in h's dtype.

  Written as pad, reshape and mean, not a windowed sum: the gradient of a windowed sum is a
  padded windowed sum that XLA:CPU materialises at h's full size (128 MiB for VGG8B's 32 × 32 ×
  256 block at batch 128, in the peak of a local step); the mean's is a broadcast that fuses
  into its consumer. ``pairs_first`` (the default) adds each window's pixels in pairs before the
  rest (:func:`_window_mean`), so that h need not be stored; pass False where h is
  stored anyway (another head reads it), and the mean is summed in one piece from it. Either
  way the gradient is the one-piece mean's broadcast.
  """
  like = jax.ShapeDtypeStruct(h.shape, h.dtype)
  return _average_pool(window, tuple(map(tuple, padding)), pairs_first, like, h)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def _average_pool(window, padding, pairs_first, like: jax.ShapeDtypeStruct, h: jax.Array):
  """:func:`average_pool` (``like``: h's shape and dtype), its gradient :func:`_window_mean`'s
  (the pool is linear), not the pairs'."""
  return _window_mean(h, window, padding, pairs_first)


def _average_pool_forward(window, padding, pairs_first, like, h):
  return _average_pool(window, padding, pairs_first, like, h), None


def _average_pool_backward(window, padding, pairs_first, like, _, g):
  pool = functools.partial(_window_mean, window=window, padding=padding)
  return jax.linear_transpose(pool, like)(g)


_average_pool.defvjp(_average_pool_forward, _average_pool_backward)


def _window_mean(h: jax.Array, window: tuple[int, int], padding, pairs_first: bool = False):
  """:func:`average_pool`'s value: pad, reshape to windows, sum, divide by the window's size.

  ``pairs_first``: each window's pixels are added in pairs (rows 2i and 2i + 1, then columns),
  along each axis whose window is even, before the sum over the rest of the window. The same
  mean, summed in another order. The point is memory: the pairs' sum is an elementwise pass
  over strided slices, into which XLA fuses h's producer (a block's batch norm and ReLU, read
  from the convolution's output), so h itself is never stored; XLA:CPU's reduction (a YNNPACK
  fusion) takes no such producer and stored h, float32 or bfloat16, at full size beside the
  convolution's output: 128 MiB for VGG8B's 32 × 32 × 256 block at batch 128 in float32, at
  the peak of a pred step. The sum over the rest reads the pairs, a quarter of h. The pixels
  are divided by the window's size in the same pass, before the sum (exactly the same values
  for the power-of-two windows of :func:`pred_pool_geometry`): XLA:CPU's reduction takes a
  division after it with a divisor map of the output's size, made at the step's start and held
  (1 MiB per block of VGG8B at batch 128).
  """
  (kh, kw), ((top, bottom), (left, right)) = window, padding
  h32 = jnp.pad(h.astype(jnp.float32), ((0, 0), (top, bottom), (left, right), (0, 0)))
  b, height, width, c = h32.shape
  out_h, out_w = (height - kh) // kh + 1, (width - kw) // kw + 1
  h32, size = h32[:, :out_h * kh, :out_w * kw], kh * kw
  if pairs_first and (kh % 2 == 0 or kw % 2 == 0):
    h32, size = h32 / size, 1
  if pairs_first and kh % 2 == 0:
    h32, kh = h32[:, 0::2] + h32[:, 1::2], kh // 2
  if pairs_first and kw % 2 == 0:
    h32, kw = h32[:, :, 0::2] + h32[:, :, 1::2], kw // 2
  h32 = h32.reshape(b, out_h, kh, out_w, kw, c)
  total = jnp.sum(h32, axis=(2, 4))
  return (total if size == 1 else total / size).astype(h.dtype)


def pool_for_pred(h: jax.Array, max_features: int, *, pairs_first: bool = True) -> jax.Array:
  """Average-pools a conv map (B, H, W, C) per :func:`pred_pool_geometry`; (B, N) passes through."""
  if h.ndim != 4:
    return h
  _, height, width, channels = h.shape
  kernel, (ph, pw) = pred_pool_geometry(height, width, channels, max_features)
  if kernel == (1, 1):
    return h
  return average_pool(h, kernel, ((ph, ph), (pw, pw)), pairs_first=pairs_first)


class PredHead(nn.Module):
  """Linear classifier (zero-initialised weight) on the flattened, average-pooled ``h``.

  (B, H, W, C) or (B, N) -> logits (B, K). ``pairs_first``: :func:`average_pool`'s (False where
  another head reads h, so that h is stored anyway).
  """

  num_classes: int
  max_features: int = 4096
  pairs_first: bool = True

  @nn.compact
  def __call__(self, h):
    h = pool_for_pred(h, self.max_features, pairs_first=self.pairs_first)
    return Dense(self.num_classes, zero_init=True, name='decoder_y')(h.reshape(h.shape[0], -1))


class SimProjection(nn.Module):
  """The trainable map before the sim loss: a bias-free 3×3 C→C conv, or a bias-free N→N linear."""

  @nn.compact
  def __call__(self, h):
    if h.ndim == 4:
      return Conv(h.shape[-1], kernel_size=3, padding=1, use_bias=False, name='conv_loss')(h)
    return Dense(h.shape[-1], use_bias=False, name='linear_loss')(h)


class ProbeHead(nn.Module):
  """A linear probe on features ``[start, stop)`` of a flattened input, passing the input on.

  (B, ...) -> (logits (B, K), the input unchanged), so a chain of probe blocks reads the same
  concatenated features, each probe its own slice (one block per probed layer).
  """

  num_classes: int
  start: int
  stop: int

  @nn.compact
  def __call__(self, x):
    features = x.reshape(x.shape[0], -1)[:, self.start:self.stop]
    return Dense(self.num_classes, name='probe')(features), x


class EmbeddingHead(nn.Module):
  """The per-block embedding: optional average pooling, flatten, bias-free linear map.

  (2B, H, W, C) or (2B, N) -> (2B, features). ``pool`` > 1 average-pools a conv map first
  (VGG6's ``AvgPool2d(2)``); ``feedback`` trains it by feedback alignment ('rf' fixed random
  B, 'urf' B updated with W's increment, 'bp' plain).
  """

  features: int = 64
  pool: int = 1
  feedback: str = 'bp'

  @nn.compact
  def __call__(self, h):
    if self.pool > 1 and h.ndim == 4:
      h = average_pool(h, (self.pool, self.pool))
    h = h.reshape(h.shape[0], -1)
    if self.feedback == 'bp':
      return Dense(self.features, use_bias=False, name='embed')(h)
    return FADense(self.features, use_bias=False, update_feedback=self.feedback == 'urf',
                   name='embed')(h)
