"""Supervised autoencoders (SAE) around VGG layer-stages (Theiler, Oktay & Frey).

A layer-stage is conv 3×3 → BatchNorm → LeakyReLU (:class:`jaxlocal.models.vgg.ConvBlock`,
max-pooled on the way to the next stage where the VGG has a pool). Its SAE shares the stage as
the first encoder level and adds, on the stage output h (B, H, W, C) with input x (B, H, W, Cin):

- type C: encoder z = act(conv_{C/2}(maxpool(h))); decoder act(conv_C(z)) interpolated back to
  H × W, then conv_{Cin} → x̂ (the inverse of the stage);
- type B: the pool and the interpolation trade places, so the encoder widens:
  z = maxpool(act(conv_{2C}(h))), decoder act(conv_C(interp(z))) → conv_{Cin} → x̂;
- type A: type B, plus p = act(conv_{4C}(maxpool(z))) before the prediction.

The prediction reads the bottleneck (or p): flatten → FC 512 → LeakyReLU → FC classes. The paper
describes B and A in one sentence each; this is our reading (a B that interpolates up in the
encoder would need a 268M-parameter FC on CIFAR's first stage).
"""

from __future__ import annotations

import flax.linen as nn
import jax

from jaxlocal.models.layers import Conv, Dense, max_pool_2x2, nonlinearity

SAE_TYPES = ('A', 'B', 'C')
leaky_relu = nonlinearity('leakyrelu')


class KeepInput(nn.Module):
  """Wraps a stage ``(x) -> (h, out)`` as ``(x) -> ((x, h), out)``, so the stage's objective
  sees the input it reconstructs."""

  stage: nn.Module

  @nn.compact
  def __call__(self, x, train: bool = False):
    h, out = self.stage(x, train=train)
    return (x, h), out


def _resize(u: jax.Array, height: int, width: int) -> jax.Array:
  return jax.image.resize(u, (u.shape[0], height, width, u.shape[-1]), 'bilinear')


class SAEHead(nn.Module):
  """The SAE of one stage minus the stage: ``(x, h) -> (x̂ like x, logits (B, K))``."""

  num_classes: int
  kind: str = 'C'
  hidden: int = 512

  @nn.compact
  def __call__(self, x, h):
    if self.kind not in SAE_TYPES:
      raise ValueError(f'unknown SAE type {self.kind!r}; choose one of {SAE_TYPES}')
    _, height, width, channels = h.shape
    if min(height, width) < 2:
      raise ValueError(f'a stage output of {height}×{width} is too small for the SAE\'s 2×2 '
                       'max-pool; use larger images (image_size) or a VGG with fewer pools')
    if self.kind == 'C':
      z = leaky_relu(Conv(channels // 2, name='encode')(max_pool_2x2(h)))
      u = _resize(leaky_relu(Conv(channels, name='decode')(z)), height, width)
    else:
      z = max_pool_2x2(leaky_relu(Conv(2 * channels, name='encode')(h)))
      u = leaky_relu(Conv(channels, name='decode')(_resize(z, height, width)))
    x_hat = Conv(x.shape[-1], name='reconstruct')(u)
    p = z
    if self.kind == 'A':
      p = leaky_relu(Conv(4 * channels, name='widen')(max_pool_2x2(z)))
    hidden = leaky_relu(Dense(self.hidden, name='fc')(p.reshape(p.shape[0], -1)))
    return x_hat, Dense(self.num_classes, name='classify')(hidden)


class FinalClassifier(nn.Module):
  """The VGG's own FC layers on the last stage: flatten → FC 1024 → LeakyReLU → FC classes."""

  num_classes: int
  hidden: int = 1024

  @nn.compact
  def __call__(self, x):
    h = leaky_relu(Dense(self.hidden)(x.reshape(x.shape[0], -1)))
    return Dense(self.num_classes)(h)
