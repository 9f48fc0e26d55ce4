"""The encoders of Tang, Yang & Amit (2022), one block per conv layer.

Every layer is a bias-free 3×3 conv (stride 1, pad 1) → optional 2×2 max-pool → optional
nonlinearity. ``feedback`` picks how the conv sends errors downwards: 'bp' (its own weights),
'rf' (a fixed random B) or 'urf' (B updated with W's increment), via
:mod:`jaxlocal.models.feedback` (the rule: :mod:`jaxlocal.rules.feedback`).

- ``conv6`` (CIFAR, 32×32): 32 Hardtanh | 32 pool | 64 Hardtanh | 64 pool | 512 pool → 4×4×512.
- ``vgg6`` (STL-10 64×64 crops): 128 Hardtanh | 256 Hardtanh pool | 256 Hardtanh |
  512 Hardtanh pool | 1024 Hardtanh pool | 1024 Hardtanh pool; its heads average-pool by 2.
- ``mnist3`` (paper §4.3): conv32–pool–tanh, conv64–pool–tanh, conv128–pool–tanh.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxlocal.models.feedback import FAConv
from jaxlocal.models.layers import Conv, max_pool_2x2

FEEDBACKS = ('bp', 'rf', 'urf')
ACTIVATIONS = {'': None, 'hardtanh': lambda x: jnp.clip(x, -1.0, 1.0), 'tanh': jnp.tanh}

# (channels, max-pool, activation) per layer, and the embedding heads' average pooling.
ENCODERS = {
    'conv6': ([(32, False, 'hardtanh'), (32, True, ''), (64, False, 'hardtanh'), (64, True, ''),
               (512, True, '')], 1),
    'vgg6': ([(128, False, 'hardtanh'), (256, True, 'hardtanh'), (256, False, 'hardtanh'),
              (512, True, 'hardtanh'), (1024, True, 'hardtanh'), (1024, True, 'hardtanh')], 2),
    'mnist3': ([(32, True, 'tanh'), (64, True, 'tanh'), (128, True, 'tanh')], 1),
}


class EncoderLayer(nn.Module):
  """(B, H, W, Cin) -> (B, H or H/2, W or W/2, features): conv → pool? → activation?"""

  features: int
  pool: bool = False
  activation: str = ''
  feedback: str = 'bp'

  @nn.compact
  def __call__(self, x):
    if self.feedback == 'bp':
      x = Conv(self.features, use_bias=False)(x)
    else:
      x = FAConv(self.features, use_bias=False, update_feedback=self.feedback == 'urf')(x)
    if self.pool:
      x = max_pool_2x2(x)
    act = ACTIVATIONS[self.activation]
    return x if act is None else act(x)


def encoder_layers(name: str, feedback: str = 'bp') -> tuple[list[EncoderLayer], int]:
  """The layers of encoder ``name`` and its heads' average-pool size."""
  if name not in ENCODERS:
    raise ValueError(f'unknown encoder {name!r}; choose one of {sorted(ENCODERS)}')
  if feedback not in FEEDBACKS:
    raise ValueError(f'unknown feedback {feedback!r}; choose one of {FEEDBACKS}')
  spec, head_pool = ENCODERS[name]
  return [EncoderLayer(c, pool, act, feedback) for c, pool, act in spec], head_pool
