"""Random views of float images in [0, 1] for self-supervised learning, on the device.

Every function takes ``images`` of shape (B, H, W, C) and draws its randomness per example
(``jax.vmap`` over split keys); the magnitudes are static Python values, so an op that is off
costs nothing. Pixel (row i, column j) sits at coordinates (y, x) = (i, j); the image centre is
((H - 1) / 2, (W - 1) / 2).
"""

from __future__ import annotations

import math

import jax
from jax.scipy import ndimage
import jax.numpy as jnp

_GRAY_WEIGHTS = (0.299, 0.587, 0.114)


# --- geometry ------------------------------------------------------------------------------


def _inverse_affine(y, x, h, w, angle, translate, scale, shear):
  """Output -> input coordinates of the affine that maps input q to
  ``scale * R(angle) @ [[1, -tan(shear)], [0, 1]] @ (q - c) + c + translate`` about the
  centre c, with (x, y) axes pointing right and down (so a positive angle turns clockwise)."""
  cy, cx = (h - 1) / 2, (w - 1) / 2
  theta, phi = jnp.deg2rad(angle), jnp.deg2rad(shear)
  cos, sin, tan = jnp.cos(theta), jnp.sin(theta), jnp.tan(phi)
  u, v = x - cx - translate[0], y - cy - translate[1]
  # R(angle)^-1 = R(-angle), then the shear's inverse [[1, tan], [0, 1]], then 1 / scale.
  ru, rv = cos * u + sin * v, -sin * u + cos * v
  return rv / scale + cy, (ru + tan * rv) / scale + cx


def _inside(t, size):
  """Bilinear weight of a frame of ``size`` pixels at coordinate t: 1 inside [0, size - 1],
  fading linearly to 0 one pixel outside (as ``map_coordinates`` with cval 0)."""
  return jnp.clip(jnp.minimum(t + 1, size - t), 0.0, 1.0)


def warp(image, *, flip=False, angle=0.0, translate=(0.0, 0.0), scale=1.0, shear=0.0,
         crop=None):
  """(H, W, C) -> (H, W, C) by one bilinear resampling (black outside the image).

  Forward order: ``crop`` = (top, left, height, width) resized to (H, W) (pixel centres:
  in = top + (out + 0.5) * height / H - 0.5, clamped to the crop as torch's
  ``interpolate(align_corners=False)``), then the affine of :func:`_inverse_affine` (angle and
  shear in degrees, translate = (dx, dy) pixels; ``angle=90`` equals
  ``jnp.rot90(image, k=-1)``, a clockwise quarter turn, on a square image), then a horizontal
  mirror if ``flip``. Each output pixel is mapped back through the three and sampled once.
  """
  h, w, _ = image.shape
  y, x = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                      indexing='ij')
  x = jnp.where(flip, w - 1 - x, x)
  y, x = _inverse_affine(y, x, h, w, angle, translate, scale, shear)
  weight = 1.0
  if crop is not None:
    top, left, height, width = crop
    # Black where the affine looks outside the resized crop, as if it were resampled apart.
    weight = (_inside(y, h) * _inside(x, w))[..., None]
    y = jnp.clip(top + (y + 0.5) * height / h - 0.5, top, top + height - 1)
    x = jnp.clip(left + (x + 0.5) * width / w - 0.5, left, left + width - 1)
  sample = lambda channel: ndimage.map_coordinates(channel, [y, x], order=1, mode='constant',
                                                   cval=0.0)
  return jax.vmap(sample, in_axes=-1, out_axes=-1)(image) * weight


def _lerp(u, lo, hi):
  """u in [0, 1) -> lo + (hi - lo) u: one uniform draw serves every parameter (one threefry
  call to compile instead of one per parameter)."""
  return lo + (hi - lo) * u


def _index(u, n):
  """u in [0, 1) -> an integer in [0, n), as float32."""
  return jnp.minimum(jnp.floor(u * n), n - 1)


def _draw_crop(u, h, w, area_range, ratio_range):
  """RandomResizedCrop window (top, left, height, width), integers as float32, from u (4,)
  uniforms: area fraction ~ U[area_range], log aspect ratio (width / height) ~ U[log
  ratio_range], sizes rounded and clipped to the image, top-left uniform."""
  area = h * w * _lerp(u[0], *area_range)
  ratio = jnp.exp(_lerp(u[1], math.log(ratio_range[0]), math.log(ratio_range[1])))
  height = jnp.clip(jnp.round(jnp.sqrt(area / ratio)), 1, h)
  width = jnp.clip(jnp.round(jnp.sqrt(area * ratio)), 1, w)
  return _index(u[2], h - height + 1), _index(u[3], w - width + 1), height, width


def _draw_affine(u, h, w, rotation, translate, scale, shear, prob):
  """RandomAffine parameters for :func:`warp` from u (6,) uniforms; the identity with
  probability 1 - prob. The shift is rounded to whole pixels, as torchvision."""
  apply = u[0] < prob
  limit = translate * jnp.array([w, h], jnp.float32)
  shift = jnp.round(_lerp(u[1:3], -limit, limit))
  return dict(angle=jnp.where(apply, _lerp(u[3], -rotation, rotation), 0.0),
              translate=jnp.where(apply, shift, 0.0),
              scale=jnp.where(apply, _lerp(u[4], *scale), 1.0),
              shear=jnp.where(apply, _lerp(u[5], -shear, shear), 0.0))


def random_geometry(key, images, *, resized_crop_scale=(1.0, 1.0),
                    resized_crop_ratio=(3 / 4, 4 / 3), flip=False, rotation=0.0,
                    translate=0.0, scale=(1.0, 1.0), shear=0.0, affine_prob=1.0):
  """(B, H, W, C) -> (B, H, W, C): random resized crop, random affine, random flip, composed
  into one bilinear resampling per example (see :func:`warp`; black outside the image).

  Crop (torchvision ``RandomResizedCrop``): area fraction ~ U[resized_crop_scale], log aspect
  ratio ~ U[log resized_crop_ratio], h = sqrt(area / ratio), w = sqrt(area * ratio) rounded,
  top-left uniform; off when resized_crop_scale == (1, 1) (the ratio is then ignored).
  Affine (torchvision ``RandomAffine`` about the centre), with probability ``affine_prob``:
  angle ~ U[-rotation, rotation] degrees, shift ~ U[-translate, translate] * (W, H) rounded to
  pixels, scale ~ U[scale], x-shear ~ U[-shear, shear] degrees. Flip: p = 0.5 if ``flip``.

  Deviations from torchvision: no 10-try rejection loop with a centre-crop fallback (a crop
  larger than the image is clipped to it, which changes its aspect ratio); one resampling
  instead of one per op (the affine's view outside the resized crop is black, as there, but
  its border pixels are not interpolated with the black). With no op enabled the images are
  returned unchanged, and a flip alone is an exact mirror.
  """
  _, h, w, _ = images.shape
  crop_on = tuple(resized_crop_scale) != (1.0, 1.0)
  affine_on = affine_prob > 0 and (rotation > 0 or translate > 0 or shear > 0
                                   or tuple(scale) != (1.0, 1.0))
  if not (crop_on or affine_on or flip):
    return images

  def one(k, image):
    u = jax.random.uniform(k, (11,))  # flip | affine (6) | crop (4)
    mirror = u[0] < 0.5 if flip else False
    if not (crop_on or affine_on):
      return jnp.where(mirror, image[:, ::-1], image)
    affine = (_draw_affine(u[1:7], h, w, rotation, translate, scale, shear, affine_prob)
              if affine_on else {})
    crop = _draw_crop(u[7:], h, w, resized_crop_scale, resized_crop_ratio) if crop_on else None
    return warp(image, flip=mirror, crop=crop, **affine)

  return jax.vmap(one)(jax.random.split(key, len(images)), images)


# --- colour --------------------------------------------------------------------------------


def _require_rgb(images, **magnitudes):
  """Raises at trace time when an op that needs 3 channels is enabled on other images."""
  c = images.shape[-1]
  for name, value in magnitudes.items():
    if value and c != 3:
      raise ValueError(f'augment.{name} needs RGB images; these have {c} channel'
                       f'{"" if c == 1 else "s"}; set it to 0')


def grayscale(images):
  """(..., C) -> (..., 1): 0.299 R + 0.587 G + 0.114 B; a 1-channel image is its own."""
  if images.shape[-1] == 1:
    return images
  return jnp.tensordot(images, jnp.asarray(_GRAY_WEIGHTS, images.dtype), axes=1)[..., None]


def rgb_to_hsv(rgb):
  """(..., 3) RGB in [0, 1] -> (..., 3) HSV in [0, 1] (hue 0 for grays)."""
  r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  value, low = jnp.max(rgb, axis=-1), jnp.min(rgb, axis=-1)
  delta = value - low
  saturation = jnp.where(value > 0, delta / jnp.where(value > 0, value, 1.0), 0.0)
  d = jnp.where(delta > 0, delta, 1.0)
  hue6 = jnp.where(value == r, (g - b) / d,
                   jnp.where(value == g, 2.0 + (b - r) / d, 4.0 + (r - g) / d))
  hue = jnp.where(delta > 0, jnp.mod(hue6 / 6.0, 1.0), 0.0)
  return jnp.stack([hue, saturation, value], axis=-1)


def hsv_to_rgb(hsv):
  """(..., 3) HSV in [0, 1] -> (..., 3) RGB: channel n in (5, 3, 1) is
  v - v s clip(min(k, 4 - k), 0, 1) with k = (n + 6 h) mod 6."""
  h, s, v = hsv[..., 0:1], hsv[..., 1:2], hsv[..., 2:3]
  k = jnp.mod(jnp.array([5.0, 3.0, 1.0], hsv.dtype) + 6.0 * h, 6.0)
  return v - v * s * jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)


def _blend(image, other, factor):
  return jnp.clip(factor * image + (1 - factor) * other, 0.0, 1.0)


def adjust_brightness(image, factor):
  """(H, W, C): clip(x * factor)."""
  return jnp.clip(image * factor, 0.0, 1.0)


def adjust_contrast(image, factor):
  """(H, W, C): blend with the mean of the grayscale image, clip(f x + (1 - f) mean)."""
  return _blend(image, jnp.mean(grayscale(image)), factor)


def adjust_saturation(image, factor):
  """(H, W, 3): blend with the grayscale image, clip(f x + (1 - f) gray)."""
  return _blend(image, grayscale(image), factor)


def adjust_hue(image, shift):
  """(H, W, 3): hue -> (hue + shift) mod 1 in HSV, shift in [-0.5, 0.5]."""
  hsv = rgb_to_hsv(image)
  hue = jnp.mod(hsv[..., 0] + shift, 1.0)
  return jnp.clip(hsv_to_rgb(hsv.at[..., 0].set(hue)), 0.0, 1.0)


def color_jitter(key, images, *, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0,
                 prob=1.0):
  """(B, H, W, C) -> (B, H, W, C): torchvision ``ColorJitter``, per example with probability
  ``prob``. Factors brightness, contrast, saturation ~ U[max(0, 1 - m), 1 + m] for magnitude
  m, hue shift ~ U[-hue, hue]; each op clips to [0, 1]. Deviation: the ops run in that fixed
  order (torchvision draws a random order per call). saturation and hue need C == 3.
  """
  _require_rgb(images, saturation=saturation, hue=hue)
  ops = [(op, magnitude, lo, hi) for op, magnitude, lo, hi in (
      (adjust_brightness, brightness, max(0.0, 1 - brightness), 1 + brightness),
      (adjust_contrast, contrast, max(0.0, 1 - contrast), 1 + contrast),
      (adjust_saturation, saturation, max(0.0, 1 - saturation), 1 + saturation),
      (adjust_hue, hue, -hue, hue)) if magnitude > 0]
  if not ops or prob == 0:
    return images

  def one(k, image):
    u = jax.random.uniform(k, (1 + len(ops),))  # apply | one factor per op
    out = image
    for u_op, (op, _, lo, hi) in zip(u[1:], ops):
      out = op(out, _lerp(u_op, lo, hi))
    return jnp.where(u[0] < prob, out, image)

  return jax.vmap(one)(jax.random.split(key, len(images)), images)


def random_grayscale(key, images, prob):
  """(B, H, W, 3) -> (B, H, W, 3): per example with probability ``prob``, the grayscale image
  replicated over the three channels."""
  if prob == 0:
    return images
  _require_rgb(images, grayscale_prob=prob)

  def one(k, image):
    gray = jnp.broadcast_to(grayscale(image), image.shape)
    return jnp.where(jax.random.uniform(k) < prob, gray, image)

  return jax.vmap(one)(jax.random.split(key, len(images)), images)
