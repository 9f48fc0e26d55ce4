"""Nøkland & Eidnes (2019), "Training Neural Networks with Local Error Signals".

MLP and VGG8B/VGG11B networks whose hidden blocks each train on their own ``pred``, ``sim`` or
``predsim`` loss, and the same networks trained by global backprop (``glob``), optionally with
every block's sim loss added (``glob+sim``, the paper's Table 9). ``bpf=True`` gives the
backprop-free local losses of Table 5 (feedback-alignment pred head, random label codes).

Config fields read here: ``model`` ('mlp', 'vgg8b', 'vgg11b' or 'vgg:<spec>'), ``loss``,
``beta``, ``dim_in_decoder``, ``bpf``, ``target_proj_size``, ``num_layers``, ``num_hidden``,
``feat_mult``, ``nonlin`` ('relu', 'leakyrelu' or 'auto'), ``dropout``, ``batch_norm``,
``freeze_hidden``, and the optimiser fields.
"""

from __future__ import annotations

import optax

from jaxlocal.blocks import Block, Learner, make_learner
from jaxlocal.models.mlp import OutputLayer, mlp_blocks
from jaxlocal.models.vgg import parse_arch, vgg_blocks
from jaxlocal.objectives.base import classifier
from jaxlocal.objectives.local_error import LOSSES, local_error
from jaxlocal.optim import optimizer_from_config
from jaxlocal.phases import Phase, single_phase
from jaxlocal.precision import compute_dtype

MODES = LOSSES + ('glob', 'glob+sim')


def resolve_nonlin(config) -> str:
  """'auto' follows the reference recipes: LeakyReLU with a sim loss, ReLU otherwise."""
  if config.nonlin != 'auto':
    return config.nonlin
  return 'leakyrelu' if config.loss in ('sim', 'predsim', 'glob+sim') else 'relu'


def check_config(config) -> None:
  """Raises ValueError naming the first impossible field of this method's config."""
  if config.loss not in MODES:
    raise ValueError(f'unknown loss {config.loss!r}; choose one of {MODES}')
  if not 0.0 <= config.dropout < 1.0:
    raise ValueError(f'dropout must lie in [0, 1), got {config.dropout}')
  if config.num_hidden <= 0 or config.dim_in_decoder <= 0 or config.feat_mult <= 0:
    raise ValueError('num_hidden, dim_in_decoder and feat_mult must be positive, got '
                     f'{config.num_hidden}, {config.dim_in_decoder}, {config.feat_mult}')
  if config.bpf and config.loss not in LOSSES:
    raise ValueError(f'bpf (backprop-free) needs a local loss {LOSSES}, got {config.loss!r}: '
                     'global backprop has no backprop-free form')
  min_layers = 1 if config.model == 'mlp' else 0
  if config.num_layers < min_layers:
    raise ValueError(f'num_layers must be >= {min_layers} for model {config.model!r}, '
                     f'got {config.num_layers}')


def network_blocks(config, *, num_classes: int, image_shape: tuple[int, int, int]) -> list[Block]:
  """The network of the config as blocks, each with its local objective (or none for glob)."""
  check_config(config)
  nonlin = resolve_nonlin(config)
  # Frozen blocks compute fixed features: dropout there would only make the features the output
  # layer trains on differ from those it is tested on (in a random VGG8B the train-mode fc1
  # features correlate 0.04 with the test-mode ones at dropout 0.2; docs/results.md).
  dropout = 0.0 if config.freeze_hidden else config.dropout
  forwards = []
  if config.model != 'mlp':
    forwards = vgg_blocks(parse_arch(config.model), input_size=image_shape[0],
                          feat_mult=config.feat_mult, nonlin=nonlin, dropout=dropout,
                          use_batch_norm=config.batch_norm)
  forwards += mlp_blocks((config.num_hidden,) * config.num_layers, nonlin=nonlin,
                         dropout=dropout, use_batch_norm=config.batch_norm)

  hidden_loss = {'glob': None, 'glob+sim': 'sim'}.get(config.loss, config.loss)
  if config.freeze_hidden:
    hidden_loss = None
  blocks = []
  for i, forward in enumerate(forwards):
    kind = 'conv' if i < len(forwards) - config.num_layers else 'fc'
    index = i + 1 if kind == 'conv' else i + 1 - (len(forwards) - config.num_layers)
    objective = None if hidden_loss is None else local_error(
        num_classes, hidden_loss, beta=config.beta, max_features=config.dim_in_decoder,
        bpf=config.bpf, target_size=config.target_proj_size)
    blocks.append(Block(forward, objective, name=f'{kind}{index}'))

  output_weight = 1.0 - config.beta if config.loss == 'predsim' and not config.freeze_hidden \
      else 1.0
  blocks.append(Block(OutputLayer(num_classes, zero_init=config.loss != 'glob'),
                      classifier(output_weight), name='output'))
  return blocks


def build(config, dataset, steps_per_epoch: int) -> Learner:
  """The :class:`~jaxlocal.blocks.Learner` for ``config`` on ``dataset``.

  ``freeze_hidden=True`` is the random-features baseline: the hidden blocks keep their random
  initial weights (only their BatchNorm statistics follow the data), have no dropout, and only
  the output layer trains, on their detached features.
  """
  blocks = network_blocks(config, num_classes=dataset.num_classes,
                          image_shape=dataset.image_shape)
  optimizer = optimizer_from_config(config, steps_per_epoch)
  dtype = compute_dtype(config.compute_dtype)
  if config.freeze_hidden:
    frozen = [optax.set_to_zero()] * (len(blocks) - 1)
    return make_learner(blocks, frozen + [optimizer], detach=True, compute_dtype=dtype)
  return make_learner(blocks, optimizer, detach=config.loss in LOSSES, compute_dtype=dtype)


def phases(config, dataset) -> list[Phase]:
  """One phase: :func:`build`'s learner on the config's loop fields."""
  return single_phase(config, dataset, build)
