"""On-device preprocessing for jitted train/eval steps: normalisation and training augmentation.

Augmentation parameters (the fields of :class:`Augment`) are static Python values; randomness is
per example via ``jax.vmap`` over split keys. The view ops (resized crop, affine, flip, colour
jitter, grayscale) live in :mod:`jaxlocal.data.views`.
"""

from __future__ import annotations

import dataclasses

import jax
from jax import lax
import jax.numpy as jnp

from jaxlocal.data import views as views_lib


def _to_unit(images):
  """(B, H, W, C) -> float32: uint8 images / 255 in [0, 1]; float inputs (precomputed
  features) unchanged."""
  x = images.astype(jnp.float32)
  if jnp.issubdtype(images.dtype, jnp.integer):
    x = x / 255.0
  return x


def _random_crop(key, images, padding: int):
  """Zero-pad by ``padding`` then crop back to (H, W) at a per-example uniform offset."""
  _, h, w, c = images.shape
  padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))

  def crop(k, image):
    dy, dx = jax.random.randint(k, (2,), 0, 2 * padding + 1)
    return lax.dynamic_slice(image, (dy, dx, 0), (h, w, c))

  return jax.vmap(crop)(jax.random.split(key, len(images)), padded)


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


_PAIRS = ('resized_crop_scale', 'resized_crop_ratio', 'scale')


@dataclasses.dataclass(frozen=True)
class Augment:
  """Training augmentation, applied on the device (see :func:`preprocess`); defaults are off.

  ``views=2`` gives two independently augmented views of each example (self-supervised
  learning). The view fields are those of :func:`jaxlocal.data.views.random_geometry`
  (``resized_crop_*``, ``flip``, ``rotation``, ``translate``, ``scale``, ``shear``,
  ``affine_prob``), :func:`~jaxlocal.data.views.color_jitter` (``brightness``, ``contrast``,
  ``saturation``, ``hue``, ``jitter_prob``) and
  :func:`~jaxlocal.data.views.random_grayscale` (``grayscale_prob``). The resized crop is off
  while ``resized_crop_scale == (1, 1)``, whatever ``resized_crop_ratio``.
  """

  crop_padding: int = 0
  flip: bool = False
  cutout: int = 0
  views: int = 1
  resized_crop_scale: tuple = (1.0, 1.0)
  resized_crop_ratio: tuple = (3 / 4, 4 / 3)
  rotation: float = 0.0
  translate: float = 0.0
  scale: tuple = (1.0, 1.0)
  shear: float = 0.0
  affine_prob: float = 1.0
  brightness: float = 0.0
  contrast: float = 0.0
  saturation: float = 0.0
  hue: float = 0.0
  jitter_prob: float = 1.0
  grayscale_prob: float = 0.0

  def __post_init__(self):
    for name in _PAIRS:  # configs may give lists: tuples keep the dataclass hashable
      value = getattr(self, name)
      if not isinstance(value, (tuple, list)) or len(value) != 2 or not 0 < value[0] <= value[1]:
        raise ValueError(f'augment.{name} must be a range (lo, hi) with 0 < lo <= hi, got '
                         f'{value}')
      object.__setattr__(self, name, tuple(float(v) for v in value))
    if self.crop_padding < 0 or self.cutout < 0:
      raise ValueError(f'augment.crop_padding and augment.cutout must be >= 0, got {self}')
    if self.views not in (1, 2):
      raise ValueError(f'augment.views must be 1 or 2, got {self.views}')
    if self.resized_crop_scale[1] > 1:
      raise ValueError(f'augment.resized_crop_scale is a fraction of the image area: its '
                       f'upper end must be <= 1, got {self.resized_crop_scale}')
    for name in ('affine_prob', 'jitter_prob', 'grayscale_prob'):
      if not 0 <= getattr(self, name) <= 1:
        raise ValueError(f'augment.{name} is a probability: set it in [0, 1], got '
                         f'{getattr(self, name)}')
    for name in ('rotation', 'translate', 'shear', 'brightness', 'contrast', 'saturation',
                 'hue'):
      if getattr(self, name) < 0:
        raise ValueError(f'augment.{name} is a magnitude: set it >= 0 (0 = off), got '
                         f'{getattr(self, name)}')
    for name, limit in (('translate', 1.0), ('hue', 0.5)):
      if getattr(self, name) > limit:
        raise ValueError(f'augment.{name} must be <= {limit}, got {getattr(self, name)}')
    if self.shear >= 90:
      raise ValueError(f'augment.shear is an angle in degrees: set it below 90, got '
                       f'{self.shear}')


def _view(key, images, mean, std, a: Augment):
  """One augmented view of uint8 (or float) images -> normalised float32, same shape."""
  crop_key, geometry_key, jitter_key, gray_key, cutout_key = jax.random.split(key, 5)
  if a.crop_padding:
    images = _random_crop(crop_key, images, a.crop_padding)
  x = views_lib.random_geometry(
      geometry_key, _to_unit(images), resized_crop_scale=a.resized_crop_scale,
      resized_crop_ratio=a.resized_crop_ratio, flip=a.flip, rotation=a.rotation,
      translate=a.translate, scale=a.scale, shear=a.shear, affine_prob=a.affine_prob)
  x = views_lib.color_jitter(jitter_key, x, brightness=a.brightness, contrast=a.contrast,
                             saturation=a.saturation, hue=a.hue, prob=a.jitter_prob)
  x = views_lib.random_grayscale(gray_key, x, a.grayscale_prob)
  x = (x - mean) / std
  if a.cutout:
    x = _cutout(cutout_key, x, a.cutout)
  return x


def preprocess(key, images, *, mean, std, **augment):
  """uint8 (B, H, W, C) -> float32 (V B, H, W, C) normalised as (x / 255 - mean) / std.

  ``augment``: the fields of :class:`Augment` (all off by default). With a key (training),
  per view: random crop after zero padding of ``crop_padding`` pixels (black, in uint8 space;
  torchvision ``RandomCrop(size, padding=p)``), conversion to [0, 1], random resized crop /
  affine / horizontal flip (p=0.5 if ``flip``) in one resampling, colour jitter, grayscale,
  normalisation, then ``cutout``: one square hole of that side set to 0 (the dataset mean)
  after normalisation. ``views=2`` returns [views A; views B], each half drawn independently
  (V = 2). ``key=None`` (evaluation) only normalises (V = 1). Float inputs (precomputed
  features) are not rescaled; the view ops treat them as values in [0, 1]. mean, std: (C,)
  arrays or tuples.
  """
  a = Augment(**augment)
  mean = jnp.asarray(mean, jnp.float32)
  std = jnp.asarray(std, jnp.float32)
  if key is None:
    return (_to_unit(images) - mean) / std
  if a.views == 1:
    return _view(key, images, mean, std, a)
  return jnp.concatenate([_view(k, images, mean, std, a) for k in jax.random.split(key)])
