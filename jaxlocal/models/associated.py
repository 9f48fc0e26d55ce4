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

from jaxlocal.models.convolution import conv_general_dilated
from jaxlocal.models.layers import max_pool_2x2
from jaxlocal.precision import apply_module

he_normal = nn.initializers.he_normal()


def _dense(features: int) -> nn.Dense:
  return nn.Dense(features, kernel_init=he_normal)


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


class ForwardStage(nn.Module):
  """One f_i. ``spec`` lists its layers in order: ``c`` a 3×3 'same' conv with c channels,
  ``(c, stride)`` a strided one, ``'M'`` a 2×2 max-pool; with ``dense`` the input is flattened
  and each ``c`` is a Dense layer. ELU after every conv/dense (ReLU in the backprop baseline);
  ``standardize_input`` first applies :func:`per_image_standardize`. NHWC.
  """

  spec: Sequence[int | str | tuple[int, int]]
  activation: str = 'elu'
  dense: bool = False
  standardize_input: bool = False
  batch_norm: bool = False   # conv-BN-activation (the BP VGG baseline)

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.standardize_input:
      x = per_image_standardize(x)
    act = ACTIVATIONS[self.activation]
    if self.dense:
      x = x.reshape(x.shape[0], -1)
    for item in self.spec:
      if item == 'M':
        x = max_pool_2x2(x)
      elif self.dense:
        x = act(_dense(item)(x))
      else:
        channels, stride = item if isinstance(item, tuple) else (item, 1)
        x = _conv(channels, stride=stride, use_bias=not self.batch_norm)(x)
        x = act(_batch_norm(train)(x) if self.batch_norm else x)
    return x


def _conv(channels: int, kernel: int = 3, stride: int = 1, use_bias: bool = True) -> nn.Conv:
  return nn.Conv(channels, (kernel, kernel), strides=stride, padding='SAME', use_bias=use_bias,
                 kernel_init=he_normal, conv_general_dilated=conv_general_dilated)


def _batch_norm(train: bool) -> nn.BatchNorm:
  """TensorFlow's batch-norm defaults (the reference's): momentum 0.99, epsilon 1e-3."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.99, epsilon=1e-3)


class ResidualStage(nn.Module):
  """One f_i of ResNet_AL: the stem (conv 16, BN, activation; ``num_blocks=0``) or a stage of
  ``num_blocks`` basic blocks, act(BN(conv(act(BN(conv x)))) + shortcut), the first with
  ``stride``; the shortcut is a 1×1 projection where the shape changes. NHWC."""

  channels: int
  num_blocks: int
  stride: int = 1
  activation: str = 'elu'
  standardize_input: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.standardize_input:
      x = per_image_standardize(x)
    act = ACTIVATIONS[self.activation]
    if self.num_blocks == 0:
      return act(_batch_norm(train)(_conv(self.channels, use_bias=False)(x)))
    for i in range(self.num_blocks):
      stride = self.stride if i == 0 else 1
      y = act(_batch_norm(train)(_conv(self.channels, stride=stride, use_bias=False)(x)))
      y = _batch_norm(train)(_conv(self.channels, use_bias=False)(y))
      if stride != 1 or x.shape[-1] != self.channels:
        x = _conv(self.channels, kernel=1, stride=stride, use_bias=False)(x)
      x = act(y + x)
    return x


MODELS = ('mlp', 'cnn', 'vgg', 'resnet20', 'resnet32')


def forward_modules(model: str, width: int, activation: str = 'elu',
                    standardize_input: bool = False, batch_norm: bool = False) -> list[nn.Module]:
  """The f_i of ``model``: 'mlp' (two Dense(width) blocks), 'cnn' (four conv blocks), 'vgg'
  (VGG_AL: [128, 256, M], [256, 512, M], [512, M, 512, M], [Dense 1024, Dense 1024]; BN only
  with ``batch_norm``, the BP baseline's), 'resnet20' / 'resnet32' (the stem, then stages of 16,
  32 (stride 2) and 64 (stride 2) channels with 3 resp. 5 basic blocks each, BatchNorm).

  ``standardize_input`` makes f_1 start with :func:`per_image_standardize`.
  """
  if model.startswith('resnet') and model[6:] in ('20', '32'):
    n = (int(model[6:]) - 2) // 6
    stages = [(16, 0, 1), (16, n, 1), (32, n, 2), (64, n, 2)]
    return [ResidualStage(c, blocks, stride, activation, standardize_input and i == 0)
            for i, (c, blocks, stride) in enumerate(stages)]
  specs = {
      'mlp': [((width,), True), ((width,), True)],
      'cnn': [((32, 32), False), ((32, (32, 2)), False), ((64, 64), False),
              ((64, (64, 2)), False)],
      'vgg': [((128, 256, 'M'), False), ((256, 512, 'M'), False), ((512, 'M', 512, 'M'), False),
              ((1024, 1024), True)],
  }
  if model in specs:
    return [ForwardStage(spec, activation, dense, standardize_input=standardize_input and i == 0,
                         batch_norm=batch_norm)
            for i, (spec, dense) in enumerate(specs[model])]
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


# ``apply(module, params, x, dtype=None)``: a bridge, encoder or decoder on x, computing in dtype
# and returning float32 (the one mixed-precision policy, :func:`jaxlocal.precision.apply_module`).
apply = apply_module
