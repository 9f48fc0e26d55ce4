"""Auxiliary heads that read a block's output ``h``: the pred classifier, the sim projection,
the SSL embedding and the linear probe."""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlocal import chunks
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


def average_pool(h: jax.Array, window: tuple[int, int], padding=((0, 0), (0, 0))) -> jax.Array:
  """``nn.avg_pool`` with strides = ``window`` and padding counted in the average (a partial
  last window dropped), summing in float32 (a 64-pixel window summed in bfloat16 loses about 3
  bits); returned in h's dtype.

  Written as pad, reshape and mean, not a windowed sum: the gradient of a windowed sum is a
  padded windowed sum that XLA:CPU materialises at h's full size (128 MiB for VGG8B's 32 × 32 ×
  256 block at batch 128, in the peak of a local step); the mean's is a broadcast that fuses
  into its consumer. An h narrower than float32 is summed a batch chunk at a time on CPU
  (:func:`_narrow_average_pool`).
  """
  pool = functools.partial(_window_mean, window=window, padding=padding)
  if h.dtype == jnp.float32:
    return pool(h)
  return _narrow_average_pool(pool, jax.ShapeDtypeStruct(h.shape, h.dtype), h)


_CHUNK_BYTES = 2**23  # the float32 copy of h that one chunk of a narrow pool converts


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _narrow_average_pool(pool, like: jax.ShapeDtypeStruct, h: jax.Array) -> jax.Array:
  """``pool(h)`` for h narrower than float32 (``like`` its shape and dtype). On CPU, a batch
  chunk at a time (:func:`jaxlocal.chunks.map_over_batch_chunks`, 8 MiB of float32 a chunk):
  XLA:CPU converts all of h to float32 before its reduction otherwise (VGG8B bfloat16 pred at
  batch 128: a 128 MiB copy at the step's peak); elsewhere XLA fuses the conversion into the
  sum. Its gradient is ``pool``'s own (a broadcast, since ``pool`` is linear), not the loop's."""
  rows = max(1, _CHUNK_BYTES // (math.prod(like.shape[1:]) * 4))
  return jax.lax.platform_dependent(
      h, cpu=lambda h: chunks.map_over_batch_chunks(pool, h, rows), default=pool)


def _narrow_average_pool_forward(pool, like, h):
  return _narrow_average_pool(pool, like, h), None


def _narrow_average_pool_backward(pool, like, _, g):
  return jax.linear_transpose(pool, like)(g)


_narrow_average_pool.defvjp(_narrow_average_pool_forward, _narrow_average_pool_backward)


def _window_mean(h: jax.Array, window: tuple[int, int], padding) -> jax.Array:
  """:func:`average_pool` in one piece."""
  (kh, kw), ((top, bottom), (left, right)) = window, padding
  h32 = jnp.pad(h.astype(jnp.float32), ((0, 0), (top, bottom), (left, right), (0, 0)))
  b, height, width, c = h32.shape
  out_h, out_w = (height - kh) // kh + 1, (width - kw) // kw + 1
  h32 = h32[:, :out_h * kh, :out_w * kw].reshape(b, out_h, kh, out_w, kw, c)
  return (jnp.sum(h32, axis=(2, 4)) / (kh * kw)).astype(h.dtype)


def pool_for_pred(h: jax.Array, max_features: int) -> jax.Array:
  """Average-pools a conv map (B, H, W, C) per :func:`pred_pool_geometry`; (B, N) passes through."""
  if h.ndim != 4:
    return h
  _, height, width, channels = h.shape
  kernel, (ph, pw) = pred_pool_geometry(height, width, channels, max_features)
  if kernel == (1, 1):
    return h
  return average_pool(h, kernel, ((ph, ph), (pw, pw)))


class PredHead(nn.Module):
  """Linear classifier (zero-initialised weight) on the flattened, average-pooled ``h``.

  (B, H, W, C) or (B, N) -> logits (B, K).
  """

  num_classes: int
  max_features: int = 4096

  @nn.compact
  def __call__(self, h):
    h = pool_for_pred(h, self.max_features)
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
