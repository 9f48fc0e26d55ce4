"""Tests for jaxlocal.data.views and the two-view path of jaxlocal.data.preprocess."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlocal import data
from jaxlocal.config_lib import base_config
from jaxlocal.data import views

ZERO, ONE = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)  # mean, std that leave [0, 1] values as they are
SSL = dict(resized_crop_scale=(0.2, 1.0), flip=True, rotation=15.0, translate=0.1,
           scale=(0.9, 1.1), shear=5.0, affine_prob=0.8, brightness=0.4, contrast=0.4,
           saturation=0.4, hue=0.1, jitter_prob=0.8, grayscale_prob=0.2)


def _images(batch=8, size=8, channels=3, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (batch, size, size, channels),
                                               dtype=np.uint8)


def _unit(images):
  return np.asarray(images, np.float32) / np.float32(255)


# --- two views -----------------------------------------------------------------------------


def test_two_views_are_reproducible_and_differ():
  images = jnp.asarray(_images())
  fn = jax.jit(functools.partial(data.preprocess, mean=ZERO, std=ONE, views=2, **SSL))
  a, b = np.asarray(fn(jax.random.key(0), images)), np.asarray(fn(jax.random.key(0), images))
  assert a.shape == (16, 8, 8, 3)
  np.testing.assert_array_equal(a, b)
  first, second = a[:8], a[8:]
  for v1, v2, x in zip(first, second, _unit(images)):
    assert not np.allclose(v1, v2) and not np.allclose(v1, x) and not np.allclose(v2, x)
  assert not np.array_equal(a, np.asarray(fn(jax.random.key(1), images)))
  assert a.min() >= 0 and a.max() <= 1 + 1e-6  # stays in [0, 1] before normalisation


def test_evaluation_only_normalises():
  images = _images()
  out = data.preprocess(None, images, mean=ZERO, std=ONE, views=2, **SSL)
  np.testing.assert_array_equal(np.asarray(out), _unit(images))


@pytest.mark.parametrize('channels', [1, 3])
def test_all_off_is_the_identity(channels):
  images = _images(channels=channels)
  mean, std = (0.5,) * channels, (0.25,) * channels
  plain = data.preprocess(None, images, mean=mean, std=std)
  out = data.preprocess(jax.random.key(0), images, mean=mean, std=std)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(plain))
  x = jnp.asarray(_unit(images))
  assert views.random_geometry(jax.random.key(0), x, resized_crop_ratio=(1.0, 1.0)) is x
  np.testing.assert_array_equal(np.asarray(views.warp(x[0])), np.asarray(x[0]))


# --- geometry ------------------------------------------------------------------------------


def _upsample2x(window):
  """Bilinear x2 of (h, w, C) with half-pixel centres, clamped at the edges (as torch's
  ``interpolate(align_corners=False)``)."""
  h, w, _ = window.shape
  src = lambda n: np.clip((np.arange(2 * n) + 0.5) / 2 - 0.5, 0, n - 1)
  y, x = src(h), src(w)
  y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
  y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
  wy, wx = (y - y0)[:, None, None], (x - x0)[None, :, None]
  rows = lambda ys: window[ys][:, x0] * (1 - wx) + window[ys][:, x1] * wx
  return rows(y0) * (1 - wy) + rows(y1) * wy


def test_resized_crop_upsamples_a_window():
  x = _unit(_images(batch=16))
  crop = jax.jit(functools.partial(views.random_geometry, resized_crop_scale=(0.25, 0.25),
                                   resized_crop_ratio=(1.0, 1.0)))
  out = np.asarray(crop(jax.random.key(2), jnp.asarray(x)))
  corners = set()
  for o, image in zip(out, x):
    hits = [(t, l) for t in range(5) for l in range(5)
            if np.allclose(o, _upsample2x(image[t:t + 4, l:l + 4]), atol=1e-5)]
    assert hits, 'the crop is not a 2x upsample of a 4x4 window'
    corners.add(hits[0])
  assert len(corners) > 1


def test_resized_crop_keeps_constant_and_ramp_images():
  ramp = np.broadcast_to(np.linspace(0.1, 0.9, 8, dtype=np.float32)[None, :, None], (8, 8, 3))
  x = jnp.asarray(np.stack([np.full((8, 8, 3), 0.7, np.float32), ramp]))
  crop = jax.jit(functools.partial(views.random_geometry, resized_crop_scale=(0.3, 0.6)))
  out = np.asarray(crop(jax.random.key(3), x))
  np.testing.assert_allclose(out[0], 0.7, atol=1e-6)
  steps = np.diff(out[1], axis=1)
  assert np.allclose(out[1], out[1][:1], atol=1e-6)  # still constant along columns
  assert (steps > -1e-6).all() and steps.max() > 0  # still increasing along rows


@pytest.mark.parametrize('angle, k', [(90.0, -1), (-90.0, 1)])
def test_quarter_turn_is_rot90(angle, k):
  """A positive angle turns the content clockwise (torchvision ``F.affine``)."""
  image = jnp.asarray(_unit(_images(batch=1, size=5)))[0]
  np.testing.assert_allclose(np.asarray(views.warp(image, angle=angle)),
                             np.asarray(jnp.rot90(image, k=k)), atol=1e-5)


def test_translate_shifts_right_and_fills_black():
  image = jnp.asarray(_unit(_images(batch=1)))[0]
  out = np.asarray(views.warp(image, translate=(1.0, 0.0)))
  np.testing.assert_array_equal(out[:, 1:], np.asarray(image)[:, :-1])
  np.testing.assert_array_equal(out[:, 0], 0.0)


def test_flip_alone_is_an_exact_mirror():
  x = _unit(_images(batch=16))
  flip = jax.jit(functools.partial(views.random_geometry, flip=True))
  out = np.asarray(flip(jax.random.key(4), jnp.asarray(x)))
  mirrored = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, x)]
  unchanged = [np.array_equal(o, i) for o, i in zip(out, x)]
  assert all(m != u for m, u in zip(mirrored, unchanged))
  assert any(mirrored) and any(unchanged)


# --- colour --------------------------------------------------------------------------------


def test_hsv_round_trip():
  rgb = jnp.asarray(np.random.default_rng(5).random((64, 3), np.float32))
  rgb = rgb.at[:4].set(jnp.array([[0.3, 0.3, 0.3], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0],
                                  [0.2, 0.9, 0.9]]))
  hsv, back = jax.jit(lambda x: (views.rgb_to_hsv(x), views.hsv_to_rgb(views.rgb_to_hsv(x))))(rgb)
  assert float(hsv.min()) >= 0 and float(hsv.max()) <= 1
  np.testing.assert_allclose(np.asarray(back), np.asarray(rgb), atol=1e-6)


def test_neutral_colour_factors_are_identities():
  image = jnp.asarray(_unit(_images(batch=1)))[0]
  neutral = jax.jit(lambda x: (views.adjust_saturation(x, 1.0), views.adjust_contrast(x, 1.0),
                               views.adjust_hue(x, 0.0)))
  saturated, contrasted, shifted = neutral(image)
  np.testing.assert_array_equal(np.asarray(saturated), np.asarray(image))
  np.testing.assert_array_equal(np.asarray(contrasted), np.asarray(image))
  np.testing.assert_allclose(np.asarray(shifted), np.asarray(image), atol=1e-6)


def test_grayscale_has_three_equal_channels():
  x = jnp.asarray(_unit(_images()))
  out = np.asarray(jax.jit(views.random_grayscale, static_argnums=2)(jax.random.key(6), x, 1.0))
  gray = _unit(_images()) @ np.float32([0.299, 0.587, 0.114])
  for c in range(3):
    np.testing.assert_allclose(out[..., c], gray, atol=1e-6)


def test_jitter_stays_in_unit_range_and_changes_images():
  x = jnp.asarray(_unit(_images()))
  jitter = jax.jit(functools.partial(views.color_jitter, brightness=0.8, contrast=0.8,
                                     saturation=0.8, hue=0.5))
  out = np.asarray(jitter(jax.random.key(7), x))
  assert out.min() >= 0 and out.max() <= 1
  assert not np.allclose(out, np.asarray(x))


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize('field', ['saturation', 'hue', 'grayscale_prob'])
def test_colour_ops_need_rgb(field):
  images = _images(channels=1)
  with pytest.raises(ValueError, match=f'augment.{field} needs RGB images; these have 1 '
                                       'channel; set it to 0'):
    data.preprocess(jax.random.key(0), images, mean=(0.5,), std=(0.25,), **{field: 0.5})


@pytest.mark.parametrize('field, value', [
    ('views', 3), ('affine_prob', 1.5), ('grayscale_prob', -0.1), ('resized_crop_scale', (0, 1)),
    ('resized_crop_scale', (0.5, 1.2)), ('resized_crop_ratio', (2.0, 1.0)), ('scale', 1.0),
    ('hue', 0.6), ('rotation', -1.0), ('translate', 1.5), ('shear', 90.0)])
def test_invalid_augment_raises(field, value):
  with pytest.raises(ValueError, match=f'augment.{field}'):
    data.Augment(**{field: value})


def test_config_builds_a_hashable_augment():
  c = base_config()
  c.augment.scale = [0.9, 1.1]
  augment = data.Augment(**c.augment)
  assert augment.scale == (0.9, 1.1) and hash(augment) == hash(data.Augment(scale=(0.9, 1.1)))
