"""Feedback alignment (Lillicrap et al. 2016): layers whose backward pass uses a random B, not W
(the rule itself: :mod:`jaxlocal.rules.feedback`).

For a layer y = op(x, W) (a matmul or a convolution, linear in each argument), ordinary backprop
sends δx = ∂op(x, W)/∂x ᵀ δy, i.e. Wᵀδy for a dense layer. Feedback alignment sends the same
expression with a fixed random matrix B of W's shape in place of W: δx = Bᵀδy. W itself still gets
its true gradient δW = ∂op/∂W ᵀ δy.

B lives in the layer's parameters as ``feedback`` (so checkpoints carry it) and receives

- no gradient (``update_feedback=False``): fixed random feedback, as in Nøkland & Eidnes' bpf;
- W's gradient (``update_feedback=True``): with any optimiser whose update depends only on the
  gradient history (SGD, Adam; no weight decay on B, see :mod:`jaxlocal.optim`), B then moves by
  exactly W's increment — Amit's "updated random feedback".

With B = W the layer is ordinary backprop (``alignment_angle`` uses this to get the true gradient).
"""

from __future__ import annotations

import functools

import flax.linen as nn

from jaxlocal.models.convolution import conv
from jaxlocal.models.layers import torch_kernel_init, uniform_fan_in
from jaxlocal.rules.feedback import FEEDBACK, feedback_aligned


def _matmul(x, kernel):
  return x @ kernel


def _conv(x, kernel, *, stride: int, padding: int):
  return conv(x, kernel, (stride, stride), ((padding, padding), (padding, padding)))


class FADense(nn.Module):
  """Dense layer (..., in) -> (..., features) trained by feedback alignment.

  Initialisation as :class:`jaxlocal.models.layers.Dense` (PyTorch defaults); B is uniform in
  ±1/√fan_in like the reference's ``LinearFA.weight_fa``. ``zero_init`` zeroes W (and the bias),
  as the reference's bpf pred head does.
  """

  features: int
  use_bias: bool = True
  zero_init: bool = False
  update_feedback: bool = False

  @nn.compact
  def __call__(self, x):
    shape = (x.shape[-1], self.features)
    kernel = self.param('kernel', nn.initializers.zeros if self.zero_init else torch_kernel_init,
                        shape)
    feedback = self.param(FEEDBACK, torch_kernel_init, shape)
    y = feedback_aligned(_matmul, x, kernel, feedback, self.update_feedback)
    if self.use_bias:
      init = nn.initializers.zeros if self.zero_init else uniform_fan_in(x.shape[-1])
      y = y + self.param('bias', init, (self.features,))
    return y


class FAConv(nn.Module):
  """Conv layer on NHWC, (B, H, W, Cin) -> (B, H', W', features), trained by feedback alignment."""

  features: int
  kernel_size: int = 3
  stride: int = 1
  padding: int = 1
  use_bias: bool = True
  update_feedback: bool = False

  @nn.compact
  def __call__(self, x):
    fan_in = x.shape[-1] * self.kernel_size**2
    shape = (self.kernel_size, self.kernel_size, x.shape[-1], self.features)
    kernel = self.param('kernel', torch_kernel_init, shape)
    feedback = self.param(FEEDBACK, torch_kernel_init, shape)
    op = functools.partial(_conv, stride=self.stride, padding=self.padding)
    y = feedback_aligned(op, x, kernel, feedback, self.update_feedback)
    if self.use_bias:
      y = y + self.param('bias', uniform_fan_in(fan_in), (self.features,))
    return y
