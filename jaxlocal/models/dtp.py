"""The layers of difference target propagation with pooling (Tang, Yang & Amit 2022; SSL-DTP).

f_l (:class:`DTPForward`) halves the spatial size, g_l (:class:`DTPInverse`) doubles it back:

  f_l(h) = tanh(maxpool2(conv3×3(h)))       (B, H, W, C_{l−1}) -> (B, H/2, W/2, C_l)
  f_l(h) = tanh(conv3×3, stride 2 (h))      the strided variant the paper compares against
  g_l(h) = tanh(deconv3×3, stride 2 (h))    (B, H, W, C_l) -> (B, 2H, 2W, C_{l−1})

The deconvolution learns the unpooling. The embedding on top is any module mapping h_L to z
(the SSL method uses :class:`jaxlocal.models.heads.EmbeddingHead`). NHWC throughout.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxlocal.models.convolution import conv_general_dilated
from jaxlocal.models.layers import Conv, max_pool_2x2, uniform_fan_in

DOWNSAMPLING = ('pool', 'stride')


class DTPForward(nn.Module):
  """f_l: (B, H, W, Cin) -> (B, H/2, W/2, features) (floor for odd sizes).

  ``'pool'``: tanh(maxpool2(conv3×3 pad 1)); ``'stride'``: tanh(conv3×3 stride 2 pad 1). The conv
  has a bias by default, as in SSL-DTP (CONV6 of the paper's Table 1 has none).
  """

  features: int
  downsample: str = 'pool'
  use_bias: bool = True

  @nn.compact
  def __call__(self, h):
    if self.downsample not in DOWNSAMPLING:
      raise ValueError(f'unknown downsample {self.downsample!r}; choose one of {DOWNSAMPLING}')
    if self.downsample == 'pool':
      a = max_pool_2x2(Conv(self.features, use_bias=self.use_bias)(h))
    else:
      a = Conv(self.features, stride=2, use_bias=self.use_bias)(h)
    return jnp.tanh(a)


class DTPInverse(nn.Module):
  """g_l: (B, H, W, Cin) -> (B, 2H, 2W, features), tanh of a 3×3 stride-2 transposed conv.

  The shapes and the map of PyTorch's ``ConvTranspose2d(k=3, s=2, p=1, output_padding=1)``
  (its kernel flipped in space): the input is dilated by 2 and padded by (k−1−p, k−1−p+1) =
  (1, 2) on each spatial axis. That is ``nn.ConvTranspose(strides=2, padding=((1, 2), (1, 2)))``,
  written as the equal ``nn.Conv(input_dilation=2)`` so that its kernel gradient is
  :mod:`jaxlocal.models.convolution`'s (same parameter tree). Initialised as PyTorch does,
  weights and bias U(±1/√fan_in) with fan_in = features·3·3 (PyTorch counts a transposed conv's
  output channels).
  """

  features: int
  use_bias: bool = True

  @nn.compact
  def __call__(self, h):
    init = uniform_fan_in(self.features * 9)
    return jnp.tanh(nn.Conv(self.features, (3, 3), padding=((1, 2), (1, 2)),
                            input_dilation=(2, 2), use_bias=self.use_bias, kernel_init=init,
                            bias_init=init, conv_general_dilated=conv_general_dilated,
                            name='deconv')(h))
