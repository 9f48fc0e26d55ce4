"""The four parts of an Associated Learning block (Kao & Chen): f, b, g, h.

f_i maps s_{i−1} to s_i (ELU); the bridge b_i maps s_i towards the target code t_i; the target
encoder g_i maps t_{i−1} to t_i and the decoder h_i maps t_i back to t_{i−1} (all sigmoid).
Every layer uses He-normal initialisation, as the reference does. The backprop baselines of the
thesis are the inference path f_1 … f_N, b_N, h_N … h_1 with ReLU, trained end to end
(:class:`InversePathHead` is its part after f_N).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

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


ACTIVATIONS = {'elu': nn.elu, 'relu': nn.relu}


def per_image_standardize(x: jax.Array) -> jax.Array:
  """(x − mean) / max(std, 1/√N) over each example's N values (TensorFlow's
  ``per_image_standardization``, the reference's CIFAR input step)."""
  flat = x.reshape(x.shape[0], -1)
  mean = flat.mean(axis=1, keepdims=True)
  std = jnp.maximum(flat.std(axis=1, keepdims=True), 1.0 / math.sqrt(flat.shape[1]))
  return ((flat - mean) / std).reshape(x.shape)


class DenseForward(nn.Module):
  """MLP_AL's f_i: ELU(Dense(x)) on the flattened x (ReLU in the backprop baseline)."""

  features: int
  activation: str = 'elu'
  standardize_input: bool = False

  @nn.compact
  def __call__(self, x):
    if self.standardize_input:
      x = per_image_standardize(x)
    return ACTIVATIONS[self.activation](_dense(self.features)(x.reshape(x.shape[0], -1)))


class ConvForward(nn.Module):
  """CNN_AL's f_i: 3×3 'same' convs with ELU, the last one with ``stride`` (NHWC)."""

  channels: Sequence[int]
  stride: int = 1
  activation: str = 'elu'
  standardize_input: bool = False

  @nn.compact
  def __call__(self, x):
    if self.standardize_input:
      x = per_image_standardize(x)
    for j, c in enumerate(self.channels):
      last = j == len(self.channels) - 1
      x = ACTIVATIONS[self.activation](nn.Conv(c, (3, 3), strides=self.stride if last else 1,
                                               padding='SAME', kernel_init=he_normal)(x))
    return x


class VGGForward(nn.Module):
  """VGG_AL's f_i: ``spec`` lists 3×3 'same' conv widths (ELU) and 'M' (2×2 max-pool), or
  Dense widths after a flatten when ``dense`` (NHWC)."""

  spec: Sequence[int | str]
  activation: str = 'elu'
  dense: bool = False
  standardize_input: bool = False

  @nn.compact
  def __call__(self, x):
    if self.standardize_input:
      x = per_image_standardize(x)
    act = ACTIVATIONS[self.activation]
    if self.dense:
      x = x.reshape(x.shape[0], -1)
    for item in self.spec:
      if item == 'M':
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
      elif self.dense:
        x = act(_dense(item)(x))
      else:
        x = act(nn.Conv(item, (3, 3), padding='SAME', kernel_init=he_normal)(x))
    return x


MODELS = ('mlp', 'cnn', 'vgg')


def forward_modules(model: str, width: int, activation: str = 'elu',
                    standardize_input: bool = False) -> list[nn.Module]:
  """The f_i of ``model``: 'mlp' (two Dense(width) blocks), 'cnn' (four conv blocks) or 'vgg'
  (VGG_AL: [128, 256, M], [256, 512, M], [512, M, 512, M], [Dense 1024, Dense 1024]; no BN).

  ``standardize_input`` makes f_1 start with :func:`per_image_standardize`.
  """
  first = dict(standardize_input=standardize_input)
  if model == 'mlp':
    return [DenseForward(width, activation, **first), DenseForward(width, activation)]
  if model == 'cnn':
    return [ConvForward((32, 32), 1, activation, **first), ConvForward((32, 32), 2, activation),
            ConvForward((64, 64), 1, activation), ConvForward((64, 64), 2, activation)]
  if model == 'vgg':
    return [VGGForward((128, 256, 'M'), activation, **first),
            VGGForward((256, 512, 'M'), activation), VGGForward((512, 'M', 512, 'M'), activation),
            VGGForward((1024, 1024), activation, dense=True)]
  raise ValueError(f'unknown Associated Learning model {model!r}; choose one of {MODELS}')


class InversePathHead(nn.Module):
  """The backprop baseline after f_N: Dense 5n, Dense n (b_N), N − 1 × Dense n (h_N … h_2), all
  ReLU, then the logits Dense K (h_1). (B, ...) -> (B, K)."""

  width: int
  depth: int
  num_classes: int
  expansion: int = 5

  @nn.compact
  def __call__(self, s):
    z = s.reshape(s.shape[0], -1)
    for features in (self.expansion * self.width,) + (self.width,) * self.depth:
      z = nn.relu(_dense(features)(z))
    return _dense(self.num_classes)(z)


def apply(module: nn.Module, params, x: jax.Array) -> jax.Array:
  return module.apply({'params': params}, x)
