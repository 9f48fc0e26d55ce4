"""VGG8B / VGG11B of Nøkland & Eidnes as sequences of conv blocks.

Each number is a 3×3 conv (stride 1, pad 1, with bias) → BatchNorm → nonlinearity; ``'M'`` is a
2×2 max-pool placed after the preceding block (after its dropout). The convs are followed by
``num_layers`` fully connected blocks of ``num_hidden`` units (see :mod:`jaxlocal.models.mlp`).
"""

from __future__ import annotations

import flax.linen as nn

from jaxlocal.models.layers import Conv, batch_norm, max_pool_2x2, nonlinearity

ARCHS = {
    'vgg8b': (128, 256, 'M', 256, 512, 'M', 512, 'M', 512, 'M'),
    'vgg11b': (128, 128, 128, 256, 'M', 256, 512, 'M', 512, 512, 'M', 512, 'M'),
}


class ConvBlock(nn.Module):
  """Conv → BatchNorm → nonlinearity = h; out = maxpool?(dropout2d(h)), computed as
  dropout2d(maxpool?(h)).

  (B, H, W, Cin) -> h (B, H', W', C), out (B, H'/2 or H', …, C). Dropout drops whole channels
  (``Dropout2d``); the local heads read h, before dropout. The two orders give the same values:
  the channel mask, (B, 1, 1, C), is drawn from the same key whatever the spatial size, and a
  channel's factor (0 or 1/(1−p) > 0) commutes with the max, rounding included (rounding is
  monotone); gradients too, but for windows where the scaling rounds two maxima into a tie.
  Dropping after the pool keeps no dropped copy of h at full size (a quarter of it instead).
  """

  features: int
  nonlin: str = 'relu'
  dropout: float = 0.0
  pool: bool = False
  kernel_size: int = 3
  stride: int = 1
  padding: int = 1
  use_batch_norm: bool = True

  @nn.compact
  def __call__(self, x, train: bool = False):
    conv = Conv(self.features, self.kernel_size, self.stride, self.padding,
                bias_apart=self.use_batch_norm)
    if self.use_batch_norm:  # the conv's bias goes to BatchNorm (its doc says why)
      x = batch_norm(train)(*conv(x))
    else:
      x = conv(x)
    h = nonlinearity(self.nonlin)(x)
    out = max_pool_2x2(h) if self.pool else h
    out = nn.Dropout(self.dropout, broadcast_dims=(1, 2), deterministic=not train)(out)
    return h, out


def parse_arch(model: str) -> tuple:
  """'vgg8b', 'vgg11b', or a custom 'vgg:64,M,128,M' -> the layer spec tuple."""
  if model in ARCHS:
    return ARCHS[model]
  usage = ("use 'mlp', one of " + ', '.join(sorted(ARCHS)) + " or a custom "
           "'vgg:<width>,<width>,M,...' (M = 2x2 max-pool, first entry a width)")
  if model.startswith('vgg:'):
    tokens = [t for t in model[4:].replace(' ', '').split(',') if t]
    bad = [t for t in tokens if t != 'M' and not (t.isdigit() and int(t) > 0)]
    if bad:
      raise ValueError(f'config field model={model!r}: {bad[0]!r} is neither a positive '
                       f'width nor M; {usage}')
    spec = tuple(t if t == 'M' else int(t) for t in tokens)
    if spec and spec[0] != 'M':
      return spec
  raise ValueError(f'unknown VGG architecture {model!r} (config field model); {usage}')


def vgg_blocks(arch: tuple, *, input_size: int, feat_mult: float = 1, nonlin: str = 'relu',
               dropout: float = 0.0, use_batch_norm: bool = True) -> list[ConvBlock]:
  """The conv blocks of ``arch``; widths × ``feat_mult``. Inputs over 64 px (STL-10) get a 7×7
  stride-2 first conv, as in the reference."""
  blocks = []
  for i, width in enumerate(arch):
    if width == 'M':
      continue
    pool = i + 1 < len(arch) and arch[i + 1] == 'M'
    big_input = not blocks and input_size > 64
    blocks.append(ConvBlock(int(width * feat_mult), nonlin, dropout, pool,
                            kernel_size=7 if big_input else 3, stride=2 if big_input else 1,
                            padding=3 if big_input else 1, use_batch_norm=use_batch_norm))
  return blocks
