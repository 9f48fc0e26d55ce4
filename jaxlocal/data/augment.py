"""On-device preprocessing for jitted train/eval steps: normalisation and training augmentation.

Augmentation parameters (crop_padding, flip, cutout) are static Python values; randomness is
per example via ``jax.vmap`` over split keys.
"""

from __future__ import annotations

import dataclasses

import jax
from jax import lax
import jax.numpy as jnp


def _normalise(images, mean, std):
  """(B, H, W, C) -> float32: (x / 255 - mean) / std per channel for uint8 images; float
  inputs (precomputed features) are not rescaled by 255."""
  x = images.astype(jnp.float32)
  if jnp.issubdtype(images.dtype, jnp.integer):
    x = x / 255.0
  return (x - mean) / std


def _random_crop(key, images, padding: int):
  """Zero-pad by ``padding`` then crop back to (H, W) at a per-example uniform offset."""
  _, h, w, c = images.shape
  padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))

  def crop(k, image):
    dy, dx = jax.random.randint(k, (2,), 0, 2 * padding + 1)
    return lax.dynamic_slice(image, (dy, dx, 0), (h, w, c))

  return jax.vmap(crop)(jax.random.split(key, len(images)), padded)


def _random_flip(key, images):
  """Mirror each example horizontally with probability 0.5."""
  flip = jax.random.bernoulli(key, 0.5, (len(images), 1, 1, 1))
  return jnp.where(flip, images[:, :, ::-1], images)


def _cutout(key, x, size: int):
  """Zero one size x size square per example, centre uniform over the image, clipped at borders."""
  _, h, w, _ = x.shape

  def hole(k):
    ky, kx = jax.random.split(k)
    top = jax.random.randint(ky, (), 0, h) - size // 2
    left = jax.random.randint(kx, (), 0, w) - size // 2
    rows, cols = jnp.arange(h), jnp.arange(w)
    in_rows = (rows >= top) & (rows < top + size)
    in_cols = (cols >= left) & (cols < left + size)
    return in_rows[:, None] & in_cols[None, :]

  holes = jax.vmap(hole)(jax.random.split(key, len(x)))
  return jnp.where(holes[..., None], 0.0, x)


def preprocess(key, images, *, mean, std, crop_padding: int = 0, flip: bool = False,
               cutout: int = 0):
  """uint8 (B, H, W, C) -> float32 (B, H, W, C) normalised as (x / 255 - mean) / std.

  With a key (training): random crop after zero padding of ``crop_padding`` pixels (black, in
  uint8 space; torchvision ``RandomCrop(size, padding=p)``), random horizontal flip (p=0.5) if
  ``flip``, normalisation, then ``cutout``: one square hole of that side set to 0 (the dataset
  mean) after normalisation. ``key=None`` (evaluation) only normalises. mean, std: (C,) arrays
  or tuples.
  """
  mean = jnp.asarray(mean, jnp.float32)
  std = jnp.asarray(std, jnp.float32)
  if key is None:
    return _normalise(images, mean, std)
  crop_key, flip_key, cutout_key = jax.random.split(key, 3)
  if crop_padding:
    images = _random_crop(crop_key, images, crop_padding)
  if flip:
    images = _random_flip(flip_key, images)
  x = _normalise(images, mean, std)
  if cutout:
    x = _cutout(cutout_key, x, cutout)
  return x


@dataclasses.dataclass(frozen=True)
class Augment:
  """Training augmentation, applied on the device (see :func:`jaxlocal.data.preprocess`)."""

  crop_padding: int = 0
  flip: bool = False
  cutout: int = 0

  def __post_init__(self):
    if self.crop_padding < 0 or self.cutout < 0:
      raise ValueError(f'augment.crop_padding and augment.cutout must be >= 0, got {self}')
