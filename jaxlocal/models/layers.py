"""Dense and conv layers with the PyTorch default initialisation the reference code relies on.

PyTorch initialises ``nn.Linear`` / ``nn.Conv2d`` weights and biases uniformly in
``±1/sqrt(fan_in)`` (kaiming-uniform with a=√5). Flax defaults differ (lecun-normal, zero bias),
so every layer that reproduces a paper uses these wrappers. ``zero_init=True`` gives the
zero-initialised weight of the reference's classifier heads.
"""

from __future__ import annotations

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
  """``nn.Conv2d`` on NHWC: (B, H, W, Cin) -> (B, H', W', features), symmetric padding."""

  features: int
  kernel_size: int = 3
  stride: int = 1
  padding: int = 1
  use_bias: bool = True

  @nn.compact
  def __call__(self, x):
    fan_in = x.shape[-1] * self.kernel_size**2
    p = self.padding
    return nn.Conv(
        self.features,
        (self.kernel_size, self.kernel_size),
        strides=self.stride,
        padding=((p, p), (p, p)),
        use_bias=self.use_bias,
        kernel_init=torch_kernel_init,
        bias_init=uniform_fan_in(fan_in),
        conv_general_dilated=conv_general_dilated,
        name='conv',
    )(x)


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """``nn.MaxPool2d(2)``: (B, H, W, C) -> (B, H // 2, W // 2, C) (an odd last row/column dropped).

  Written as a reshape and a max, not ``nn.max_pool``: XLA differentiates a windowed max by
  select-and-scatter, which on CPU costs ~9× this (measured on (200, 28, 28, 32)). Gradients agree
  except on exact ties, which this splits evenly and PyTorch gives to the first maximum.
  """
  b, h, w, c = x.shape
  x = x[:, :h // 2 * 2, :w // 2 * 2]
  return jnp.max(x.reshape(b, h // 2, 2, w // 2, 2, c), axis=(2, 4))


def batch_norm(train: bool) -> nn.BatchNorm:
  """BatchNorm as PyTorch configures it: momentum 0.1 there is 0.9 here, eps 1e-5, γ=1, β=0.

  One difference remains: Flax's running variance averages the biased batch variance where
  PyTorch averages the unbiased one (a factor B/(B−1), 0.8 % at B = 128); it only affects
  evaluation.
  """
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name='bn')


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
