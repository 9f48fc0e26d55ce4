"""Tests for jaxlocal.objectives: the local-error losses against independent NumPy formulas.

Every expected value is recomputed here in float64 NumPy from the formulas of Nøkland & Eidnes'
reference code (similarity matrix, label similarity, sim / pred / predsim losses, the pred
head's average pooling), written from their description rather than from jaxlocal's code.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlocal.models import heads
from jaxlocal.models.mlp import OutputLayer
from jaxlocal.objectives import (label_similarity, local_error, predsim_loss, sim_loss,
                                 similarity_matrix)
from jaxlocal.objectives.local_error import spatial_std

ATOL = 1e-5


# ----------------------------------------------------------------------------------------------
# Independent NumPy reference implementations.
# ----------------------------------------------------------------------------------------------


def np_similarity(x) -> np.ndarray:
  """The reference's similarity matrix, for NHWC conv maps or (B, ...) arrays, in float64."""
  x = np.asarray(x, np.float64)
  if x.ndim == 4 and x.shape[3] > 3 and x.shape[1] > 1:
    b, hh, ww, c = x.shape
    per_channel = np.transpose(x, (0, 3, 1, 2)).reshape(b, c, hh * ww)
    z = np.std(per_channel, axis=2, ddof=1)
  else:
    z = x.reshape(x.shape[0], -1)
  zc = z - z.mean(axis=1, keepdims=True)
  zn = zc / (1e-8 + np.sqrt(np.sum(zc * zc, axis=1, keepdims=True)))
  return np.clip(zn @ zn.T, -1.0, 1.0)


def np_label_similarity(labels, num_classes) -> np.ndarray:
  """Analytically: 1 for equal labels, −1/(K−1) otherwise."""
  labels = np.asarray(labels)
  same = labels[:, None] == labels[None, :]
  return np.where(same, 1.0, -1.0 / (num_classes - 1))


def np_sim_loss(projected, labels, num_classes, mask=None) -> float:
  sq = (np_similarity(projected) - np_label_similarity(labels, num_classes))**2
  if mask is None:
    return float(sq.mean())
  pairs = np.outer(mask, mask)
  return float((sq * pairs).sum() / pairs.sum())


def np_avg_pool(h, kernel, padding) -> np.ndarray:
  """PyTorch ``AvgPool2d(kernel, stride=kernel, padding, count_include_pad=True)`` on NHWC."""
  h = np.asarray(h, np.float64)
  b, height, width, c = h.shape
  (kh, kw), (ph, pw) = kernel, padding
  padded = np.zeros((b, height + 2 * ph, width + 2 * pw, c))
  padded[:, ph:ph + height, pw:pw + width] = h
  out_h = (height + 2 * ph - kh) // kh + 1
  out_w = (width + 2 * pw - kw) // kw + 1
  out = np.zeros((b, out_h, out_w, c))
  for i in range(out_h):
    for j in range(out_w):
      window = padded[:, i * kh:(i + 1) * kh, j * kw:(j + 1) * kw]
      out[:, i, j] = window.sum(axis=(1, 2)) / (kh * kw)
  return out


def np_conv3x3(h, kernel) -> np.ndarray:
  """Bias-free 3×3 cross-correlation, stride 1, zero padding 1; NHWC input, HWIO kernel."""
  h = np.asarray(h, np.float64)
  kernel = np.asarray(kernel, np.float64)
  b, height, width, _ = h.shape
  padded = np.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)))
  out = np.zeros((b, height, width, kernel.shape[3]))
  for dy in range(3):
    for dx in range(3):
      out += np.einsum('bhwi,io->bhwo', padded[:, dy:dy + height, dx:dx + width], kernel[dy, dx])
  return out


def np_xent(logits, labels) -> float:
  logits = np.asarray(logits, np.float64)
  m = logits.max(axis=1, keepdims=True)
  lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
  return float(np.mean(lse - logits[np.arange(len(labels)), labels]))


def _randn(seed, shape, scale=1.0):
  return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def _with_random_pred_head(aux, seed, scale=0.5):
  """aux params with the (zero-initialised) pred head kernel replaced by random values."""
  aux = jax.tree.map(lambda a: a, aux)  # copy the nested dicts
  kernel = aux['pred']['decoder_y']['linear']['kernel']
  assert np.all(np.asarray(kernel) == 0.0)
  aux['pred']['decoder_y']['linear']['kernel'] = jnp.asarray(_randn(seed, kernel.shape, scale))
  return aux


LABELS = np.array([0, 3, 0, 7, 3, 3], np.int32)  # repeats: both values of S(Y) occur

# ----------------------------------------------------------------------------------------------
# similarity_matrix / label_similarity / sim_loss
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize('shape, branch', [
    ((5, 4, 3, 6), 'std'),        # conv map, C > 3 and H > 1: per-channel spatial std
    ((5, 4, 4, 3), 'flatten'),    # C = 3: flattened
    ((5, 1, 4, 6), 'flatten'),    # H = 1: flattened
    ((5, 9), 'flatten'),          # 2-D
])
def test_similarity_matrix_matches_reference(shape, branch):
  x = _randn(1, shape) + 0.3
  got = np.asarray(similarity_matrix(jnp.asarray(x)))
  want = np_similarity(x)
  assert got.shape == (shape[0], shape[0])
  np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
  # The two branches really give different matrices on these inputs, so the test tells them apart.
  if len(shape) == 4:
    flat = np_similarity(x.reshape(shape[0], -1))
    stds = np_similarity(np.std(x.astype(np.float64).reshape(shape[0], -1, shape[3]), axis=1,
                                ddof=1))
    assert np.max(np.abs(flat - stds)) > 1e-2
    np.testing.assert_allclose(want, stds if branch == 'std' else flat, atol=1e-12)
  np.testing.assert_allclose(np.diag(got), 1.0, atol=1e-5)


def test_similarity_matrix_clips_to_unit_interval():
  x = np.tile(_randn(2, (1, 7)), (3, 1)) * np.array([[1.0], [2.0], [-3.0]], np.float32)
  got = np.asarray(similarity_matrix(jnp.asarray(x)))
  assert got.max() <= 1.0 and got.min() >= -1.0
  np.testing.assert_allclose(got, [[1, 1, -1], [1, 1, -1], [-1, -1, 1]], atol=1e-6)


@pytest.mark.parametrize('num_classes', [2, 3, 10])
def test_label_similarity_is_one_within_class_and_minus_one_over_k_minus_one_across(num_classes):
  labels = np.array([0, 1, 0, 1, 1], np.int32) % num_classes
  got = np.asarray(label_similarity(jnp.asarray(labels), num_classes))
  same = labels[:, None] == labels[None, :]
  np.testing.assert_allclose(got[same], 1.0, atol=1e-6, rtol=0)
  np.testing.assert_allclose(got[~same], -1.0 / (num_classes - 1), atol=1e-6, rtol=0)
  if num_classes == 10:
    np.testing.assert_allclose(got[0, 1], -1.0 / 9.0, atol=1e-6, rtol=0)


def test_sim_loss_is_mean_squared_difference_of_similarity_matrices():
  projected = _randn(3, (6, 5))
  got = float(sim_loss(jnp.asarray(projected), {'label': jnp.asarray(LABELS)}, 10))
  want = np_sim_loss(projected, LABELS, 10)
  np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
  assert want > 0.1


def test_sim_loss_of_conv_map_uses_spatial_std():
  projected = _randn(4, (6, 3, 3, 5))
  got = float(sim_loss(jnp.asarray(projected), {'label': jnp.asarray(LABELS)}, 4 + 6))
  np.testing.assert_allclose(got, np_sim_loss(projected, LABELS, 10), atol=ATOL, rtol=0)


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_spatial_std_and_its_gradient_equal_jnp_std(dtype):
  """spatial_std (its gradient written by hand, for memory) is jnp.std over H, W with
  ddof=1, value and gradient, also on a constant channel (σ = 0: both gradients NaN there)."""
  x = (3 * jax.random.normal(jax.random.key(0), (4, 5, 6, 7)) + 2).astype(dtype)
  w = jax.random.normal(jax.random.key(1), (4, 7))
  want = lambda x: jnp.std(x.astype(jnp.float32), axis=(1, 2), ddof=1).astype(x.dtype)
  for f in (want, spatial_std):
    assert f(x).dtype == dtype
  loss = lambda f: jax.value_and_grad(lambda x: jnp.sum(f(x).astype(jnp.float32) ** 2 * w))(x)
  (v_want, g_want), (v_got, g_got) = loss(want), loss(spatial_std)
  tol = 1e-5 if dtype == jnp.float32 else 1e-2
  np.testing.assert_allclose(np.float32(v_got), np.float32(v_want), rtol=tol)
  g_want, g_got = np.asarray(g_want, np.float32), np.asarray(g_got, np.float32)
  np.testing.assert_allclose(g_got, g_want, rtol=tol, atol=tol * np.abs(g_want).max())
  constant = x.at[..., 0].set(1.5)
  grads = [jax.grad(lambda x: jnp.sum(f(x).astype(jnp.float32)))(constant)[..., 0]
           for f in (want, spatial_std)]
  assert np.isnan(np.asarray(grads[0], np.float32)).all() == np.isnan(
      np.asarray(grads[1], np.float32)).all()


def test_sim_loss_with_mask_averages_over_pairs_of_real_examples_only():
  projected = _randn(5, (6, 5))
  mask = np.array([1, 1, 0, 1, 0, 1], np.float32)
  # Padding examples with garbage features: they must not count.
  projected[mask == 0] = 100.0 * _randn(6, (2, 5))
  batch = {'label': jnp.asarray(LABELS), 'mask': jnp.asarray(mask)}
  got = float(sim_loss(jnp.asarray(projected), batch, 10))
  real = mask == 1
  sub = float(sim_loss(jnp.asarray(projected[real]), {'label': jnp.asarray(LABELS[real])}, 10))
  np.testing.assert_allclose(got, np_sim_loss(projected, LABELS, 10, mask), atol=ATOL, rtol=0)
  np.testing.assert_allclose(got, np_sim_loss(projected[real], LABELS[real], 10), atol=ATOL,
                             rtol=0)
  np.testing.assert_allclose(got, sub, atol=1e-6, rtol=0)
  # And the unmasked loss is different, so the mask matters.
  assert abs(np_sim_loss(projected, LABELS, 10) - got) > 1e-3


# ----------------------------------------------------------------------------------------------
# The pred head's pooling
# ----------------------------------------------------------------------------------------------

# (channels, size, max_features, kernel, padding, pooled (H', W')) from the reference's tables.
POOL_TABLE = [
    # VGG8B on CIFAR, --dim-in-decoder 2048
    (128, 32, 2048, (8, 8), (0, 0), (4, 4)),
    (256, 32, 2048, (16, 8), (0, 0), (2, 4)),
    (256, 16, 2048, (8, 4), (0, 0), (2, 4)),
    (512, 16, 2048, (8, 8), (0, 0), (2, 2)),
    (512, 8, 2048, (4, 4), (0, 0), (2, 2)),
    (512, 4, 2048, (2, 2), (0, 0), (2, 2)),
    # VGG8B on CIFAR, --dim-in-decoder 4096
    (128, 32, 4096, (8, 4), (0, 0), (4, 8)),
    (256, 32, 4096, (8, 8), (0, 0), (4, 4)),
    (256, 16, 4096, (4, 4), (0, 0), (4, 4)),
    (512, 16, 4096, (8, 4), (0, 0), (2, 4)),
    (512, 8, 4096, (4, 2), (0, 0), (2, 4)),
    (512, 4, 4096, (2, 1), (0, 0), (2, 4)),
    # VGG8B on MNIST, --dim-in-decoder 1024 (sizes not divisible: zero padding)
    (128, 28, 1024, (16, 8), (8, 4), (2, 4)),
    (256, 28, 1024, (16, 16), (8, 8), (2, 2)),
    (256, 14, 1024, (8, 8), (4, 4), (2, 2)),
    (512, 14, 1024, (16, 8), (8, 4), (1, 2)),
    (512, 7, 1024, (8, 4), (4, 2), (1, 2)),
    (512, 3, 1024, (4, 2), (2, 1), (1, 2)),
]


@pytest.mark.parametrize('channels, size, max_features, kernel, padding, pooled', POOL_TABLE)
def test_pred_pool_geometry_matches_reference_tables(channels, size, max_features, kernel,
                                                     padding, pooled):
  assert heads.pred_pool_geometry(size, size, channels, max_features) == (kernel, padding)
  # The table's output size follows from PyTorch's AvgPool2d formula and fits the limit.
  out = tuple((size + 2 * p - k) // k + 1 for k, p in zip(kernel, padding))
  assert out == pooled
  assert channels * out[0] * out[1] <= max_features


def test_pred_pool_geometry_without_pooling():
  assert heads.pred_pool_geometry(4, 4, 8, 4096) == ((1, 1), (0, 0))
  assert heads.pred_pool_geometry(4, 4, 8, 128) == ((1, 1), (0, 0))
  assert heads.pred_pool_geometry(4, 4, 8, 127) == ((2, 1), (0, 0))


@pytest.mark.parametrize('channels, size, max_features, pooled', [
    (128, 28, 1024, (2, 4)),
    (512, 7, 1024, (1, 2)),
    (512, 3, 1024, (1, 2)),
    (256, 32, 2048, (2, 4)),
    (512, 4, 4096, (2, 4)),
])
def test_pool_for_pred_output_shapes(channels, size, max_features, pooled):
  h = jnp.ones((1, size, size, channels), jnp.float32)
  assert heads.pool_for_pred(h, max_features).shape == (1, *pooled, channels)


def test_pool_for_pred_values_count_padding_in_average():
  h = _randn(7, (2, 3, 3, 512))
  got = np.asarray(heads.pool_for_pred(jnp.asarray(h), 1024))
  want = np_avg_pool(h, (4, 2), (2, 1))
  assert got.shape == want.shape == (2, 1, 2, 512)
  np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize('window, padding', [
    ((4, 4), (0, 0)),
    ((8, 4), (4, 2)),   # the padded (7, 7) map of test_pred_loss_conv_map_with_non_square_...
    ((2, 1), (0, 0)),   # pairs along the rows only
])
def test_average_pool_pairs_first_is_the_same_mean_with_the_same_gradient(dtype, window,
                                                                          padding):
  """Pixels added in pairs first (the default, so that h need not be stored) or the window in
  one piece: the same average (PyTorch's, padding counted), summed in another order, and the
  same gradient bitwise (both the one-piece mean's broadcast), in h's dtype."""
  h = jnp.asarray(_randn(9, (5, 7, 7, 8))).astype(dtype)
  (ph, pw) = padding
  pad = ((ph, ph), (pw, pw))
  results = {}
  for pairs_first in (True, False):
    pooled = heads.average_pool(h, window, pad, pairs_first=pairs_first)
    w = jnp.asarray(_randn(10, pooled.shape))
    loss = lambda h: jnp.sum(heads.average_pool(h, window, pad, pairs_first=pairs_first)
                             .astype(jnp.float32) * w)
    results[pairs_first] = pooled, jax.jit(jax.grad(loss))(h)
  (pairs, pairs_grad), (whole, whole_grad) = results[True], results[False]
  assert pairs.dtype == whole.dtype == pairs_grad.dtype == dtype
  want = np_avg_pool(np.asarray(h, np.float32), window, padding)
  tol = 1e-6 if dtype == jnp.float32 else 1e-2
  for got in (pairs, whole):
    np.testing.assert_allclose(np.asarray(got, np.float32), want, rtol=tol, atol=tol)
  np.testing.assert_array_equal(np.asarray(pairs_grad, np.float32),
                                np.asarray(whole_grad, np.float32))


def test_pool_for_pred_passes_2d_through():
  h = jnp.asarray(_randn(8, (3, 40)))
  np.testing.assert_array_equal(np.asarray(heads.pool_for_pred(h, 4)), np.asarray(h))


# ----------------------------------------------------------------------------------------------
# pred, sim, predsim objectives
# ----------------------------------------------------------------------------------------------


def _np_pred(h, aux, kernel_geometry=None):
  """Logits of the pred head in NumPy: avg-pool (if given), NHWC flatten, linear."""
  h = np.asarray(h, np.float64)
  if kernel_geometry is not None:
    h = np_avg_pool(h, *kernel_geometry)
  flat = h.reshape(h.shape[0], -1)
  lin = aux['pred']['decoder_y']['linear']
  return flat @ np.asarray(lin['kernel'], np.float64) + np.asarray(lin['bias'], np.float64)


def test_pred_loss_conv_map_with_non_square_padded_pooling():
  # (7, 7, 8), limit 16: the reference's rule gives kernel (8, 4) — larger than the map along H —
  # with padding (4, 2), output 1×2×8 = 16 features.
  h = _randn(10, (4, 7, 7, 8)) + 0.5
  labels = np.array([1, 4, 4, 0], np.int32)
  objective = local_error(5, 'pred', max_features=16)
  aux = _with_random_pred_head(objective.init(jax.random.key(0), jnp.asarray(h)), seed=11)
  assert aux['pred']['decoder_y']['linear']['kernel'].shape == (16, 5)
  assert 'sim' not in aux
  loss, metrics = objective.loss(aux, jnp.asarray(h), {'label': jnp.asarray(labels)})
  logits = _np_pred(h, aux, ((8, 4), (4, 2)))
  want = np_xent(logits, labels)
  np.testing.assert_allclose(float(loss), want, atol=ATOL, rtol=0)
  np.testing.assert_allclose(float(metrics['pred_loss']), want, atol=ATOL, rtol=0)
  np.testing.assert_allclose(float(metrics['accuracy']),
                             np.mean(np.argmax(logits, 1) == labels), atol=1e-6)
  assert set(metrics) == {'pred_loss', 'accuracy'}
  # Sanity: the flatten order matters (NHWC vs NCHW gives another loss here).
  pooled = np_avg_pool(h, (8, 4), (4, 2))
  nchw = np.transpose(pooled, (0, 3, 1, 2)).reshape(4, -1)
  lin = aux['pred']['decoder_y']['linear']
  other = np_xent(nchw @ np.asarray(lin['kernel'], np.float64) + np.asarray(lin['bias']), labels)
  assert abs(other - want) > 1e-3


def test_pred_loss_conv_map_without_pooling():
  h = _randn(12, (3, 2, 2, 4))
  labels = np.array([2, 0, 1], np.int32)
  objective = local_error(3, 'pred', max_features=16)
  aux = _with_random_pred_head(objective.init(jax.random.key(1), jnp.asarray(h)), seed=13)
  loss, _ = objective.loss(aux, jnp.asarray(h), {'label': jnp.asarray(labels)})
  np.testing.assert_allclose(float(loss), np_xent(_np_pred(h, aux), labels), atol=ATOL, rtol=0)


def test_pred_loss_2d():
  h = _randn(14, (6, 9))
  objective = local_error(10, 'pred', max_features=4)  # the limit only concerns conv maps
  aux = _with_random_pred_head(objective.init(jax.random.key(2), jnp.asarray(h)), seed=15)
  assert aux['pred']['decoder_y']['linear']['kernel'].shape == (9, 10)
  loss, _ = objective.loss(aux, jnp.asarray(h), {'label': jnp.asarray(LABELS)})
  np.testing.assert_allclose(float(loss), np_xent(_np_pred(h, aux), LABELS), atol=ATOL, rtol=0)


def test_pred_loss_respects_mask():
  h = _randn(16, (6, 9))
  mask = np.array([1, 0, 1, 1, 0, 1], np.float32)
  objective = local_error(10, 'pred')
  aux = _with_random_pred_head(objective.init(jax.random.key(3), jnp.asarray(h)), seed=17)
  batch = {'label': jnp.asarray(LABELS), 'mask': jnp.asarray(mask)}
  loss, metrics = objective.loss(aux, jnp.asarray(h), batch)
  real = mask == 1
  logits = _np_pred(h, aux)
  np.testing.assert_allclose(float(loss), np_xent(logits[real], LABELS[real]), atol=ATOL, rtol=0)
  np.testing.assert_allclose(float(metrics['accuracy']),
                             np.mean(np.argmax(logits[real], 1) == LABELS[real]), atol=1e-6)


def test_sim_objective_conv_map():
  h = _randn(18, (6, 3, 4, 5))
  objective = local_error(10, 'sim')
  aux = objective.init(jax.random.key(4), jnp.asarray(h))
  assert set(aux) == {'sim'}
  loss, metrics = objective.loss(aux, jnp.asarray(h), {'label': jnp.asarray(LABELS)})
  projected = np_conv3x3(h, aux['sim']['conv_loss']['conv']['kernel'])
  want = np_sim_loss(projected, LABELS, 10)
  np.testing.assert_allclose(float(loss), want, atol=ATOL, rtol=0)
  assert set(metrics) == {'sim_loss'}


@pytest.mark.parametrize('beta', [0.3, 0.99])
def test_predsim_conv_map(beta):
  h = _randn(20, (6, 7, 7, 8)) + 0.5
  objective = local_error(10, 'predsim', beta=beta, max_features=16)
  aux = _with_random_pred_head(objective.init(jax.random.key(5), jnp.asarray(h)), seed=21)
  sim_kernel = aux['sim']['conv_loss']['conv']['kernel']
  assert sim_kernel.shape == (3, 3, 8, 8)
  assert 'bias' not in aux['sim']['conv_loss']['conv']
  loss, metrics = objective.loss(aux, jnp.asarray(h), {'label': jnp.asarray(LABELS)})
  pred = np_xent(_np_pred(h, aux, ((8, 4), (4, 2))), LABELS)
  sim = np_sim_loss(np_conv3x3(h, sim_kernel), LABELS, 10)
  np.testing.assert_allclose(float(metrics['pred_loss']), pred, atol=ATOL, rtol=0)
  np.testing.assert_allclose(float(metrics['sim_loss']), sim, atol=ATOL, rtol=0)
  np.testing.assert_allclose(float(loss), (1 - beta) * pred + beta * sim, atol=ATOL, rtol=0)


def test_predsim_2d():
  beta = 0.4
  h = _randn(22, (6, 9))
  objective = local_error(10, 'predsim', beta=beta)
  aux = _with_random_pred_head(objective.init(jax.random.key(6), jnp.asarray(h)), seed=23)
  lin = aux['sim']['linear_loss']['linear']
  assert set(lin) == {'kernel'} and lin['kernel'].shape == (9, 9)
  loss, metrics = objective.loss(aux, jnp.asarray(h), {'label': jnp.asarray(LABELS)})
  pred = np_xent(_np_pred(h, aux), LABELS)
  sim = np_sim_loss(np.asarray(h, np.float64) @ np.asarray(lin['kernel'], np.float64), LABELS, 10)
  np.testing.assert_allclose(float(metrics['pred_loss']), pred, atol=ATOL, rtol=0)
  np.testing.assert_allclose(float(metrics['sim_loss']), sim, atol=ATOL, rtol=0)
  np.testing.assert_allclose(float(loss), (1 - beta) * pred + beta * sim, atol=ATOL, rtol=0)
  assert set(metrics) == {'pred_loss', 'accuracy', 'sim_loss'}


def test_predsim_loss_formula():
  np.testing.assert_allclose(float(predsim_loss(2.0, 5.0, 0.25)), 0.75 * 2 + 0.25 * 5)


# ----------------------------------------------------------------------------------------------
# Initialisation and argument checks
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize('shape', [(2, 4, 4, 6), (2, 12)])
def test_fresh_pred_head_kernel_is_exactly_zero(shape):
  aux = local_error(10, 'predsim').init(jax.random.key(7), jnp.ones(shape))
  lin = aux['pred']['decoder_y']['linear']
  assert np.all(np.asarray(lin['kernel']) == 0.0)
  # The bias keeps PyTorch's U(±1/sqrt(fan_in)) initialisation.
  fan_in = int(np.prod(shape[1:]))
  bias = np.asarray(lin['bias'])
  assert np.any(bias != 0.0) and np.all(np.abs(bias) <= 1.0 / math.sqrt(fan_in))
  # ...so at initialisation the logits are the bias for every example.
  h = jnp.asarray(_randn(24, shape))
  loss, _ = local_error(10, 'pred').loss({'pred': aux['pred']}, h,
                                         {'label': jnp.asarray([1, 2])})
  np.testing.assert_allclose(float(loss), np_xent(np.tile(bias, (2, 1)), np.array([1, 2])),
                             atol=ATOL)


def test_output_layer_zero_init_flag():
  x = jnp.ones((2, 3, 3, 2))
  zero = OutputLayer(10, zero_init=True).init(jax.random.key(8), x)['params']
  dense = OutputLayer(10, zero_init=False).init(jax.random.key(8), x)['params']
  zero_kernel = np.asarray(zero['Dense_0']['linear']['kernel'])
  assert zero_kernel.shape == (18, 10)
  assert np.all(zero_kernel == 0.0)
  kernel = np.asarray(dense['Dense_0']['linear']['kernel'])
  assert kernel.shape == (18, 10)
  assert np.all(kernel != 0.0) and np.all(np.abs(kernel) <= 1.0 / math.sqrt(18))


@pytest.mark.parametrize('loss', ['glob', 'PRED', 'simpred', ''])
def test_local_error_rejects_unknown_loss(loss):
  with pytest.raises(ValueError, match='unknown local loss'):
    local_error(10, loss)


@pytest.mark.parametrize('beta', [-0.01, 1.01, 2.0])
def test_local_error_rejects_beta_outside_unit_interval(beta):
  with pytest.raises(ValueError, match='beta'):
    local_error(10, 'predsim', beta=beta)


@pytest.mark.parametrize('beta', [0.0, 1.0])
def test_local_error_accepts_beta_at_the_ends(beta):
  local_error(10, 'predsim', beta=beta)


# ----------------------------------------------------------------------------------------------
# backprop-free (bpf) variants
# ----------------------------------------------------------------------------------------------


def np_bce_with_logits(logits, bits) -> float:
  """PyTorch ``BCEWithLogitsLoss`` (mean over every element), float64."""
  x = np.asarray(logits, np.float64)
  return float(np.mean(np.maximum(x, 0) - x * bits + np.log1p(np.exp(-np.abs(x)))))


def _bpf_case(h, loss, num_classes, max_features, seed):
  objective = local_error(num_classes, loss, beta=0.3, max_features=max_features, bpf=True,
                          target_size=12)
  aux = objective.init(jax.random.key(seed), jnp.asarray(h))
  if 'pred' in aux:  # the FA head starts at zero: give it random weights
    aux = jax.tree.map(lambda a: a, aux)
    aux['pred']['kernel'] = jnp.asarray(_randn(seed, aux['pred']['kernel'].shape, 0.5))
    aux['pred']['bias'] = jnp.asarray(_randn(seed + 1, aux['pred']['bias'].shape, 0.5))
  return objective, aux


@pytest.mark.parametrize('shape, max_features, geometry', [
    ((6, 10), 4096, None),                          # FC block: no pooling
    ((6, 4, 4, 8), 32, ((2, 2), (0, 0))),            # conv: 2×2 pool, then std over the 2×2 grid
    ((6, 7, 7, 8), 16, ((8, 4), (4, 2))),            # conv: the reference's non-square pooling
])
def test_bpf_predsim_matches_numpy(shape, max_features, geometry):
  h = _randn(20, shape) + 0.3
  objective, aux = _bpf_case(h, 'predsim', 9, max_features, seed=21)
  loss, metrics = objective.loss(aux, jnp.asarray(h), {'label': jnp.asarray(LABELS)})

  P = np.asarray(aux['label_projection'], np.float64)
  assert P.shape == (9, 12) and np.all(np.abs(P) <= 1 / 3)
  codes = np.eye(9)[LABELS] @ P
  pooled = np_avg_pool(h, *geometry) if geometry else np.asarray(h, np.float64)
  logits = pooled.reshape(6, -1) @ np.asarray(aux['pred']['kernel'], np.float64) + \
      np.asarray(aux['pred']['bias'], np.float64)
  pred = np_bce_with_logits(logits, (codes > 0).astype(np.float64))
  sim = float(np.mean((np_similarity(pooled) - np_similarity(codes))**2))
  np.testing.assert_allclose(float(metrics['pred_loss']), pred, atol=ATOL, rtol=0)
  np.testing.assert_allclose(float(metrics['sim_loss']), sim, atol=ATOL, rtol=0)
  np.testing.assert_allclose(float(loss), 0.7 * pred + 0.3 * sim, atol=ATOL, rtol=0)
  scores = logits @ np.sign(P).T
  np.testing.assert_allclose(float(metrics['accuracy']), np.mean(scores.argmax(1) == LABELS))


def test_bpf_has_no_trainable_map_before_sim_and_a_zero_fa_head():
  h = _randn(22, (6, 4, 4, 8))
  objective = local_error(9, 'predsim', bpf=True)
  aux = objective.init(jax.random.key(0), jnp.asarray(h))
  assert set(aux) == {'pred', 'label_projection'}
  assert set(aux['pred']) == {'kernel', 'bias', 'feedback'}
  assert not np.any(aux['pred']['kernel']) and not np.any(aux['pred']['bias'])
  assert np.all(np.asarray(aux['pred']['feedback']) != 0)
  assert aux['label_projection'].shape == (9, 128)
  assert set(local_error(9, 'sim', bpf=True).init(jax.random.key(0), jnp.asarray(h))) == \
      {'label_projection'}


def test_bpf_gradients_reach_h_through_the_feedback_matrix_and_never_the_projection():
  h = jnp.asarray(_randn(23, (6, 10)))
  objective, aux = _bpf_case(h, 'pred', 9, 4096, seed=24)
  batch = {'label': jnp.asarray(LABELS)}
  grad_aux, grad_h = jax.grad(lambda a, x: objective.loss(a, x, batch)[0], argnums=(0, 1))(aux, h)
  assert not np.any(grad_aux['label_projection'])
  assert not np.any(grad_aux['pred']['feedback'])
  # δh = δlogits Bᵀ: recompute δlogits from the BCE by hand
  P = np.asarray(aux['label_projection'], np.float64)
  bits = (np.eye(9)[LABELS] @ P > 0).astype(np.float64)
  logits = np.asarray(h, np.float64) @ np.asarray(aux['pred']['kernel']) + np.asarray(aux['pred']['bias'])
  d_logits = (1 / (1 + np.exp(-logits)) - bits) / logits.size
  np.testing.assert_allclose(grad_h, d_logits @ np.asarray(aux['pred']['feedback'], np.float64).T,
                             atol=1e-6)


def test_bpf_rejects_an_empty_label_code():
  with pytest.raises(ValueError, match='target_size'):
    local_error(10, 'pred', bpf=True, target_size=0)
