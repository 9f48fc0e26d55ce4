"""Dense and conv layers with the PyTorch default initialisation the reference code relies on.

PyTorch initialises ``nn.Linear`` / ``nn.Conv2d`` weights and biases uniformly in
``±1/sqrt(fan_in)`` (kaiming-uniform with a=√5). Flax defaults differ (lecun-normal, zero bias),
so every layer that reproduces a paper uses these wrappers. ``zero_init=True`` gives the
zero-initialised weight of the reference's classifier heads.
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlocal.models.convolution import conv_general_dilated

torch_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform')


def uniform_fan_in(fan_in: int) -> nn.initializers.Initializer:
  """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default bias initialiser."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


class Dense(nn.Module):
  """``nn.Linear``: (..., in) -> (..., features)."""

  features: int
  use_bias: bool = True
  zero_init: bool = False

  @nn.compact
  def __call__(self, x):
    fan_in = x.shape[-1]
    return nn.Dense(
        self.features,
        use_bias=self.use_bias,
        kernel_init=nn.initializers.zeros if self.zero_init else torch_kernel_init,
        bias_init=uniform_fan_in(fan_in),
        name='linear',
    )(x)


class Conv(nn.Module):
  """``nn.Conv2d`` on NHWC: (B, H, W, Cin) -> (B, H', W', features), symmetric padding.

  ``bias_apart=True`` returns ``(x ⊛ W, b)`` instead of ``x ⊛ W + b`` (same parameters, same
  initial values), for a :class:`BatchNorm` that takes the bias as its ``shift``.
  """

  features: int
  kernel_size: int = 3
  stride: int = 1
  padding: int = 1
  use_bias: bool = True
  bias_apart: bool = False

  @nn.compact
  def __call__(self, x):
    fan_in = x.shape[-1] * self.kernel_size**2
    p = self.padding
    apart = self.use_bias and self.bias_apart
    return (_ConvBiasApart if apart else nn.Conv)(
        self.features,
        (self.kernel_size, self.kernel_size),
        strides=self.stride,
        padding=((p, p), (p, p)),
        use_bias=self.use_bias and not apart,
        kernel_init=torch_kernel_init,
        bias_init=uniform_fan_in(fan_in),
        conv_general_dilated=conv_general_dilated,
        name='conv',
    )(x)


class _ConvBiasApart(nn.Conv):
  """``nn.Conv`` built without a bias, which then makes its bias as ``nn.Conv`` would (after the
  kernel, so from the same random key) and returns it beside x ⊛ W: (y, b)."""

  @nn.compact
  def __call__(self, x):
    y = super().__call__(x)
    return y, self.param('bias', self.bias_init, (self.features,), self.param_dtype)


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """``nn.MaxPool2d(2)``: (B, H, W, C) -> (B, H // 2, W // 2, C) (an odd last row/column dropped).

  The max of the window's four strided slices, not ``nn.max_pool``: XLA differentiates a
  windowed max by select-and-scatter, which on CPU costs ~9× a reshape and max (measured on
  (200, 28, 28, 32)). Its gradient is written by hand (:func:`_max_pool_backward`): it keeps
  only x, recomputes the maxima once ∂L/∂y arrives and gives ∂L/∂y to the window's first
  maximum (row-major), as PyTorch and XLA's select-and-scatter do; JAX's derivative of a
  reduce-max kept the output beside x and split ties evenly.
  """
  b, h, w, c = x.shape
  return _max_pool(x[:, :h // 2 * 2, :w // 2 * 2])


def _window_slices(x):
  """The four (B, H/2, W/2, C) slices of each 2×2 window, row-major: (0,0), (0,1), (1,0), (1,1)."""
  return [x[:, i::2, j::2] for i in (0, 1) for j in (0, 1)]


@jax.custom_vjp
def _max_pool(x):
  a, b, c, d = _window_slices(x)
  return jnp.maximum(jnp.maximum(a, b), jnp.maximum(c, d))


def _max_pool_forward(x):
  return _max_pool(x), x


def _max_pool_backward(x, dy):
  slices = _window_slices(x)
  y = jnp.maximum(jnp.maximum(slices[0], slices[1]), jnp.maximum(slices[2], slices[3]))
  grads, taken = [], jnp.zeros(y.shape, bool)
  for s in slices:
    first = (s == y) & ~taken
    grads.append(jnp.where(first, dy, jnp.zeros((), dy.dtype)))
    taken = taken | first
  bsz, h2, w2, c = y.shape
  dx = jnp.stack(grads, axis=3).reshape(bsz, h2, w2, 2, 2, c)
  return (dx.transpose(0, 1, 3, 2, 4, 5).reshape(bsz, 2 * h2, 2 * w2, c),)


_max_pool.defvjp(_max_pool_forward, _max_pool_backward)


def batch_norm(train: bool) -> nn.Module:
  """BatchNorm as PyTorch configures it: momentum 0.1 there is 0.9 here, eps 1e-5, γ=1, β=0.

  One difference remains: Flax's running variance averages the biased batch variance where
  PyTorch averages the unbiased one (a factor B/(B−1), 0.8 % at B = 128); it only affects
  evaluation.
  """
  return BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name='bn')


class BatchNorm(nn.Module):
  """``flax.linen.BatchNorm`` over every axis but the last, with the same parameters
  (``scale``, ``bias``), statistics (``mean``, ``var``) and values, and a hand-written gradient
  in train mode (:func:`_batch_norm_train`).

  Flax's gradient is JAX's differentiation of its normalisation, which XLA:CPU compiles to keep
  the input, its centred copy and the normalised gradient's intermediates alive at once: a
  128 MiB tensor each for VGG8B's 32 × 32 × 256 block at batch 128, the peak of a local step.
  The hand-written one keeps only the input and reads it with the output gradient in two
  reductions and one elementwise pass.

  ``shift`` (C,), optional: a bias the layer before left out (``Conv(bias_apart=True)``); this
  normalises x + shift. In train mode the output does not depend on it (the batch mean moves
  with it), so the statistics are taken of x and ``shift`` is added to the running mean only;
  its gradient is the sum of x's, as JAX's for x + shift. The point is memory: x is then the
  convolution's own output, which every reduction here reads in place, where x + b was a
  float32 map XLA:CPU materialised for its reductions beside the convolution's output (VGG8B at
  batch 128, float32: glob 1030 → 739 MiB, pred 510 → 382 MiB, docs/results.md).
  """

  use_running_average: bool = False
  momentum: float = 0.99
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x, shift=None):
    features = (x.shape[-1],)
    scale = self.param('scale', nn.initializers.ones, features, jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, features, jnp.float32)
    ra_mean = self.variable('batch_stats', 'mean', lambda s: jnp.zeros(s, jnp.float32), features)
    ra_var = self.variable('batch_stats', 'var', lambda s: jnp.ones(s, jnp.float32), features)
    if self.use_running_average:
      x = x if shift is None else x + shift.astype(x.dtype)
      return _normalize(x, ra_mean.value, ra_var.value, scale, bias, self.epsilon)
    shift = jnp.zeros(features, jnp.float32) if shift is None else shift
    y, mean, var = _batch_norm_train(x, shift, scale, bias, self.epsilon)
    if not self.is_initializing():
      ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
      ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
    return y


def _normalize(x, mean, var, scale, bias, epsilon):
  """Flax's ``_normalize``, operation for operation: (x − mean) · (rsqrt(var + ε) · scale) + bias,
  in the dtype of x, scale and bias together."""
  y = x - mean
  mul = jax.lax.rsqrt(var + epsilon) * scale
  return jnp.asarray(y * mul + bias, jnp.result_type(x, scale, bias))


def _batch_stats(x):
  """Flax's batch statistics (``use_fast_variance``): the mean and max(0, E[x²] − mean²), over
  every axis but the last, in at least float32; with mean² for the backward."""
  x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  axes = tuple(range(x.ndim - 1))
  mean, mean2 = x.mean(axes), jax.lax.square(x).mean(axes)
  return mean, mean2 - jax.lax.square(mean)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _batch_norm_train(x, shift, scale, bias, epsilon):
  """``(y, mean, var)``: x normalised by its own batch statistics, as Flax computes it; ``mean``
  is x + shift's."""
  return _batch_norm_forward(x, shift, scale, bias, epsilon)[0]


def _batch_norm_forward(x, shift, scale, bias, epsilon):
  mean, spread = _batch_stats(x)
  var = jnp.maximum(0.0, spread)
  y = _normalize(x, mean, var, scale, bias, epsilon)
  return (y, mean + shift, var), (x, shift, scale, bias, mean, spread)


def _batch_norm_backward(epsilon, residuals, cotangents):
  """The gradient JAX derives for Flax's normalisation, written out: with inv = rsqrt(var + ε),
  dx = dy · inv · scale + (d mean + 2 x · d E[x²]) / N, the mean's and E[x²]'s cotangents
  collecting the paths through (x − mean), inv and max(0, ·) (JAX's ½ at a tie included).

  Σ dy · (x − mean) is taken as Σ dy · x − mean · Σ dy: a reduction of x itself, which XLA:CPU
  reads where it lies, where x − mean was a float32 map of x's size it made (and, scheduled
  early, held from the forward pass on) for its reduction. Σ dy and Σ dy · x are one pass
  (:func:`_sums`), into which XLA fuses dy's producer (the ReLU's mask of the gradient above).
  Its rounding error is that of Flax's E[x²] − mean² for the variance: relative to the spread,
  it grows with |mean| / std; on a constant channel (std 0, whose output the scale does not
  affect) the scale's gradient is rounding instead of 0 (tests/test_block_memory.py bounds
  it)."""
  x, shift, scale, bias, mean, spread = residuals
  dy, d_mean, d_var = cotangents
  f32 = jnp.promote_types(x.dtype, jnp.float32)
  axes = tuple(range(x.ndim - 1))
  n = math.prod(x.shape[:-1])
  var, gate_var = jax.vjp(lambda v: jnp.maximum(0.0, v), spread)
  inv = jax.lax.rsqrt(var + epsilon)
  x32, dy32 = x.astype(f32), dy.astype(f32)
  d_bias, dy_x = _sums((dy32, dy32 * x32), axes)
  dy_centred = dy_x - mean * d_bias
  d_scale = dy_centred * inv
  d_inv = dy_centred * scale
  d_var = d_var + d_inv * (-0.5 * inv / (var + epsilon))
  (d_spread,) = gate_var(d_var)
  d_mean2 = d_spread
  d_mean = d_mean - inv * scale * d_bias - 2 * mean * d_spread
  dx = dy32 * (inv * scale) + (d_mean + 2 * x32 * d_mean2) / n
  return (dx.astype(x.dtype), dx.sum(axes).astype(shift.dtype), d_scale.astype(scale.dtype),
          d_bias.astype(bias.dtype))


_batch_norm_train.defvjp(_batch_norm_forward, _batch_norm_backward)


def _sums(arrays: tuple[jax.Array, ...], axes: tuple[int, ...]) -> tuple[jax.Array, ...]:
  """``tuple(a.sum(axes) for a in arrays)`` for float32 arrays of one shape, ``axes`` every axis
  but the last: over the middle axes (a map's pixels) in one reduction of all the arrays at
  once, then over the batch.

  The point is memory: XLA:CPU hands a reduction of one array to YNNPACK, whose fusion takes
  no elementwise producer with other consumers, so the array is stored first (VGG8B's 32 × 32
  × 256 output gradient after the ReLU: 128 MiB at batch 128, at the peak of a pred step); a
  reduction of several arrays at once stays in XLA's own loop, which computes them from their
  producers' inputs. Over the pixels, that loop has B × C sums to share among threads and runs
  faster than the two library sums (34 vs 61 ms for that map on 2 cores); over all but the
  channels, its C sums ran 3× slower than them. (B, N) arrays have no pixels: two plain sums.
  """
  pixels = axes[1:]
  if pixels:
    zeros = tuple(jnp.zeros((), a.dtype) for a in arrays)
    arrays = jax.lax.reduce(arrays, zeros, lambda a, b: tuple(p + q for p, q in zip(a, b)),
                            pixels)
  return tuple(a.sum(0) for a in arrays)


NONLINEARITIES = {
    'relu': nn.relu,
    'leakyrelu': lambda x: nn.leaky_relu(x, negative_slope=0.01),
}


def nonlinearity(name: str):
  """The activation named ``name`` ('relu' or 'leakyrelu' with slope 0.01)."""
  try:
    return NONLINEARITIES[name]
  except KeyError:
    raise ValueError(
        f'unknown nonlinearity {name!r}; choose one of {sorted(NONLINEARITIES)}') from None
