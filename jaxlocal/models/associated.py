"""The four parts of an Associated Learning block (Kao & Chen): f, b, g, h.

f_i maps s_{i−1} to s_i (ELU); the bridge b_i maps s_i towards the target code t_i; the target
encoder g_i maps t_{i−1} to t_i and the decoder h_i maps t_i back to t_{i−1} (all sigmoid).
Every layer uses He-normal initialisation, as the reference does.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

he_normal = nn.initializers.he_normal()


def _dense(features: int, name: str | None = None) -> nn.Dense:
  return nn.Dense(features, kernel_init=he_normal, name=name)


class SigmoidDense(nn.Module):
  """sigmoid(Dense(x)) on the flattened x: (B, ...) -> (B, features). g_i and h_i."""

  features: int

  @nn.compact
  def __call__(self, x):
    return nn.sigmoid(_dense(self.features)(x.reshape(x.shape[0], -1)))


class Bridge(nn.Module):
  """b_i(s) = sigmoid(Dense_n(sigmoid(Dense_{5n}(flatten s)))): (B, ...) -> (B, n)."""

  features: int
  expansion: int = 5

  @nn.compact
  def __call__(self, s):
    z = nn.sigmoid(_dense(self.expansion * self.features)(s.reshape(s.shape[0], -1)))
    return nn.sigmoid(_dense(self.features)(z))


class DenseForward(nn.Module):
  """MLP_AL's f_i: ELU(Dense(x)) on the flattened x."""

  features: int

  @nn.compact
  def __call__(self, x):
    return nn.elu(_dense(self.features)(x.reshape(x.shape[0], -1)))


class ConvForward(nn.Module):
  """CNN_AL's f_i: 3×3 'same' convs with ELU, the last one with ``stride`` (NHWC)."""

  channels: Sequence[int]
  stride: int = 1

  @nn.compact
  def __call__(self, x):
    for j, c in enumerate(self.channels):
      last = j == len(self.channels) - 1
      x = nn.elu(nn.Conv(c, (3, 3), strides=self.stride if last else 1, padding='SAME',
                         kernel_init=he_normal)(x))
    return x


def forward_modules(model: str, width: int) -> list[nn.Module]:
  """The f_i of ``model``: 'mlp' (two Dense(width) blocks) or 'cnn' (four conv blocks)."""
  if model == 'mlp':
    return [DenseForward(width), DenseForward(width)]
  if model == 'cnn':
    return [ConvForward((32, 32)), ConvForward((32, 32), stride=2), ConvForward((64, 64)),
            ConvForward((64, 64), stride=2)]
  raise ValueError(f"unknown Associated Learning model {model!r}; choose 'mlp' or 'cnn'")


def apply(module: nn.Module, params, x: jax.Array) -> jax.Array:
  return module.apply({'params': params}, x)
