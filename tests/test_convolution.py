"""The conv op with the matmul kernel gradient equals XLA's convolution, values and gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxlocal.models import convolution
from jaxlocal.models.layers import Conv

CASES = [  # (input shape, kernel shape, strides, padding)
    ((2, 7, 6, 3), (3, 3, 3, 4), (1, 1), ((1, 1), (1, 1))),
    ((2, 8, 8, 3), (3, 3, 3, 5), (2, 2), 'SAME'),
    ((1, 9, 7, 2), (3, 3, 2, 3), (2, 2), 'SAME'),        # odd sizes: asymmetric SAME padding
    ((2, 6, 6, 4), (1, 1, 4, 2), (1, 1), 'VALID'),
    ((2, 9, 9, 2), (5, 3, 2, 3), (2, 1), ((2, 0), (0, 1))),
]


def _inputs(x_shape, k_shape):
  kx, kk, ky = jax.random.split(jax.random.key(0), 3)
  return (jax.random.normal(kx, x_shape), jax.random.normal(kk, k_shape) / np.sqrt(k_shape[2]),
          ky)


def _xla(x, kernel, strides, padding, input_dilation=None):
  return lax.conv_general_dilated(x, kernel, strides, padding, lhs_dilation=input_dilation,
                                  dimension_numbers=convolution.NHWC,
                                  precision=lax.Precision.HIGHEST)


TRANSPOSED = [  # (input shape, kernel shape, input dilation, padding): stride 1
    ((2, 4, 4, 3), (3, 3, 3, 2), (2, 2), ((1, 2), (1, 2))),  # DTP's inverse: k3 s2 p1 op1
    ((1, 3, 5, 2), (3, 2, 2, 3), (2, 3), ((2, 1), (0, 1))),
    ((2, 3, 3, 2), (1, 1, 2, 2), (2, 2), ((1, 0), (0, 1))),  # low padding above k − 1: a crop
    ((1, 4, 3, 2), (3, 3, 2, 2), (2, 2), ((0, 0), (2, 2))),
]


@pytest.mark.parametrize('x_shape, k_shape, strides, padding', CASES)
def test_values_and_gradients_equal_xla_convolution(x_shape, k_shape, strides, padding):
  x, kernel, key = _inputs(x_shape, k_shape)
  ours = lambda x, k: convolution.conv(x, k, strides, padding, lax.Precision.HIGHEST)
  y = ours(x, kernel)
  np.testing.assert_allclose(y, _xla(x, kernel, strides, padding), rtol=1e-5, atol=1e-5)
  dy = jax.random.normal(key, y.shape)
  loss = lambda f: lambda x, k: jnp.vdot(f(x, k), dy)
  expected = jax.jit(jax.grad(loss(lambda x, k: _xla(x, k, strides, padding)), (0, 1)))(x, kernel)
  got = jax.jit(jax.grad(loss(ours), (0, 1)))(x, kernel)
  for g, e in zip(got, expected):
    np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('x_shape, k_shape, strides, padding', CASES[:3])
def test_both_kernel_gradient_paths_agree(x_shape, k_shape, strides, padding):
  """The CPU path (matmuls) and the other platforms' path (XLA) give the same ∂L/∂W."""
  x, kernel, key = _inputs(x_shape, k_shape)
  pads = lax.padtype_to_pads(x.shape[1:3], k_shape[:2], strides, padding) if isinstance(
      padding, str) else padding
  dy = jax.random.normal(key, _xla(x, kernel, strides, pads).shape)
  kwargs = dict(strides=strides, padding=pads, precision=lax.Precision.HIGHEST)
  np.testing.assert_allclose(convolution.kernel_grad_by_matmuls(x, dy, kernel, **kwargs),
                             convolution.kernel_grad_by_xla(x, dy, kernel, **kwargs),
                             rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('x_shape, k_shape, dilation, padding', TRANSPOSED)
def test_transposed_convolution_values_and_gradients_equal_xla(x_shape, k_shape, dilation,
                                                               padding):
  x, kernel, key = _inputs(x_shape, k_shape)
  ours = lambda x, k: convolution.conv(x, k, (1, 1), padding, lax.Precision.HIGHEST, dilation)
  xla = lambda x, k: _xla(x, k, (1, 1), padding, dilation)
  y = ours(x, kernel)
  np.testing.assert_allclose(y, xla(x, kernel), rtol=1e-5, atol=1e-5)
  dy = jax.random.normal(key, y.shape)
  loss = lambda f: lambda x, k: jnp.vdot(f(x, k), dy)
  expected = jax.jit(jax.grad(loss(xla), (0, 1)))(x, kernel)
  got = jax.jit(jax.grad(loss(ours), (0, 1)))(x, kernel)
  for g, e in zip(got, expected):
    np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)
  kwargs = dict(padding=padding, precision=lax.Precision.HIGHEST)
  np.testing.assert_allclose(  # the CPU path against the other platforms' path
      convolution.transposed_kernel_grad_by_matmuls(x, dy, kernel, dilation=dilation, **kwargs),
      convolution.kernel_grad_by_xla(x, dy, kernel, strides=(1, 1), dilation=dilation, **kwargs),
      rtol=1e-4, atol=1e-4)


def test_input_dilation_needs_stride_one():
  x, kernel, _ = _inputs((1, 4, 4, 2), (3, 3, 2, 2))
  with pytest.raises(ValueError, match='input_dilation'):
    convolution.conv(x, kernel, (2, 2), 'SAME', input_dilation=(2, 2))
  args = (x, kernel, (2, 2), ((1, 1), (1, 1)))
  dn = lax.conv_dimension_numbers(x.shape, kernel.shape, convolution.NHWC)
  np.testing.assert_array_equal(  # the drop-in hands such a convolution to lax
      convolution.conv_general_dilated(*args, lhs_dilation=(2, 2), dimension_numbers=dn),
      lax.conv_general_dilated(*args, lhs_dilation=(2, 2), dimension_numbers=dn))


def test_matmul_kernel_gradient_holds_one_kernel_row_of_copies_at_a_time():
  """Rows in sequence: ~kw + 4 inputs of temporary memory (all rows unrolled: 12 for 3×3)."""
  if jax.default_backend() != 'cpu':  # XLA:GPU's buffer assignment holds 20.9 inputs here
    pytest.skip('a CPU mechanism: conv() takes the matmul kernel gradient on CPU only, and the '
                'bound is XLA:CPU\'s memory plan for it')
  x, dy = jnp.zeros((8, 32, 32, 64)), jnp.zeros((8, 32, 32, 64))
  grad = jax.jit(lambda x, dy: convolution.kernel_grad_by_matmuls(
      x, dy, jnp.zeros((3, 3, 64, 64)), strides=(1, 1), padding=((1, 1), (1, 1))))
  temp = grad.lower(x, dy).compile().memory_analysis().temp_size_in_bytes
  assert temp <= 9 * x.nbytes, f'{temp / x.nbytes:.1f} inputs of temporary memory'


@pytest.mark.parametrize('x_shape, k_shape, strides, padding', CASES[1:] + [
    ((5, 7, 6, 3), (3, 3, 3, 4), (1, 1), ((1, 1), (1, 1)))])
def test_kernel_gradient_in_batch_chunks_equals_xla(monkeypatch, x_shape, k_shape, strides,
                                                    padding):
  """One example per chunk (a chunk's row copies over 1 byte), and two per chunk where the
  batch does not divide (the last chunk repeats rows of the one before, masked): the same ∂L/∂W
  as XLA's."""
  x, kernel, key = _inputs(x_shape, k_shape)
  pads = lax.padtype_to_pads(x.shape[1:3], k_shape[:2], strides, padding) if isinstance(
      padding, str) else padding
  dy = jax.random.normal(key, _xla(x, kernel, strides, pads).shape)
  kwargs = dict(strides=strides, padding=pads, precision=lax.Precision.HIGHEST)
  expected = convolution.kernel_grad_by_xla(x, dy, kernel, **kwargs)
  row_bytes = dy.shape[1] * dy.shape[2] * k_shape[1] * x_shape[3] * 4
  for chunk_bytes in (1, 2 * row_bytes):
    monkeypatch.setattr(convolution, '_CHUNK_BYTES', chunk_bytes)
    got = jax.jit(lambda x, dy: convolution.kernel_grad_by_matmuls(x, dy, kernel, **kwargs))(
        x, dy)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_matmul_kernel_gradient_holds_one_batch_chunk_of_copies_at_a_time(monkeypatch):
  """In chunks of a quarter of the batch, one chunk's padded input and row copies are alive at a
  time: under 3 inputs of temporary memory (the whole batch at once: ~9, the test above)."""
  if jax.default_backend() != 'cpu':
    pytest.skip('a CPU mechanism: conv() takes the matmul kernel gradient on CPU only')
  x, dy = jnp.zeros((8, 32, 32, 64)), jnp.zeros((8, 32, 32, 64))
  monkeypatch.setattr(convolution, '_CHUNK_BYTES', 3 * x.nbytes // 4)  # 2 of 8 examples
  grad = jax.jit(lambda x, dy: convolution.kernel_grad_by_matmuls(
      x, dy, jnp.zeros((3, 3, 64, 64)), strides=(1, 1), padding=((1, 1), (1, 1))))
  temp = grad.lower(x, dy).compile().memory_analysis().temp_size_in_bytes
  assert temp <= 3 * x.nbytes, f'{temp / x.nbytes:.1f} inputs of temporary memory'


def test_bfloat16_kernel_gradient_in_chunks_holds_no_float32_copy_of_its_inputs(monkeypatch):
  """bfloat16 x and dy enter the chunk loop as bits: XLA:CPU, which computes bfloat16 in
  float32, otherwise converted both in full before the loop (6.6 inputs of temporary memory
  instead of 4.6); and the gradient still equals XLA's to bfloat16 rounding."""
  if jax.default_backend() != 'cpu':
    pytest.skip('a CPU mechanism: conv() takes the matmul kernel gradient on CPU only')
  x, kernel, key = _inputs((8, 32, 32, 16), (3, 3, 16, 16))
  dy = jax.random.normal(key, x.shape)
  x, dy, kernel = (a.astype(jnp.bfloat16) for a in (x, dy, kernel))
  monkeypatch.setattr(convolution, '_CHUNK_BYTES', 2 * 32 * 32 * 3 * 16 * 4)  # 2 of 8 examples
  kwargs = dict(strides=(1, 1), padding=((1, 1), (1, 1)))
  grad = jax.jit(lambda x, dy: convolution.kernel_grad_by_matmuls(x, dy, kernel, **kwargs))
  temp = grad.lower(x, dy).compile().memory_analysis().temp_size_in_bytes
  assert temp <= 5.5 * x.nbytes, f'{temp / x.nbytes:.1f} inputs of temporary memory'
  expected = convolution.kernel_grad_by_xla(x.astype(jnp.float32), dy.astype(jnp.float32),
                                            kernel.astype(jnp.float32), **kwargs)
  np.testing.assert_allclose(grad(x, dy).astype(jnp.float32), expected, rtol=2e-2, atol=0.2)


def test_bfloat16_kernel_gradient_keeps_the_kernel_dtype():
  x, kernel, key = _inputs((2, 6, 6, 3), (3, 3, 3, 4))
  x, kernel = x.astype(jnp.bfloat16), kernel.astype(jnp.bfloat16)
  g = jax.grad(lambda k: jnp.sum(convolution.conv(x, k).astype(jnp.float32)))(kernel)
  assert g.dtype == jnp.bfloat16
  expected = jax.grad(lambda k: jnp.sum(_xla(x.astype(jnp.float32), k, (1, 1), 'SAME')))(
      kernel.astype(jnp.float32))
  np.testing.assert_allclose(g.astype(jnp.float32), expected, rtol=2e-2, atol=5e-2)


def test_dilated_and_grouped_convolutions_fall_back_to_lax():
  x, kernel, _ = _inputs((2, 9, 9, 4), (3, 3, 2, 4))
  for kwargs in ({'rhs_dilation': (2, 2)}, {'feature_group_count': 2}):
    k = kernel if 'feature_group_count' in kwargs else jnp.concatenate([kernel, kernel], 2)
    args = (x, k, (1, 1), 'SAME')
    dn = lax.conv_dimension_numbers(x.shape, k.shape, convolution.NHWC)
    np.testing.assert_array_equal(
        convolution.conv_general_dilated(*args, dimension_numbers=dn, **kwargs),
        lax.conv_general_dilated(*args, dimension_numbers=dn, **kwargs))


def test_flax_conv_layer_uses_it_and_keeps_its_parameters():
  """layers.Conv's parameter tree is nn.Conv's; its kernel gradient equals plain nn.Conv's."""
  x, _, _ = _inputs((2, 8, 8, 3), (3, 3, 3, 4))
  ours = Conv(4, stride=2)
  params = ours.init(jax.random.key(1), x)
  assert jax.tree.map(jnp.shape, params) == {
      'params': {'conv': {'kernel': (3, 3, 3, 4), 'bias': (4,)}}}
  plain = nn.Conv(4, (3, 3), strides=2, padding=((1, 1), (1, 1)))
  g_ours = jax.grad(lambda p: jnp.sum(jnp.sin(ours.apply(p, x))))(params)['params']['conv']
  g_plain = jax.grad(lambda p: jnp.sum(jnp.sin(plain.apply({'params': p}, x))))(
      params['params']['conv'])
  for name in ('kernel', 'bias'):
    np.testing.assert_allclose(g_ours[name], g_plain[name], rtol=1e-4, atol=1e-5)
