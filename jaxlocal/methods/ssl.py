"""Self-supervised local learning (Tang, Yang & Amit 2022), then a linear probe.

A run has two phases (:class:`jaxlocal.phases.Phase`):

1. ``encoder``: the encoder (``model``: conv6, vgg6, mnist3) trains on two views of every image
   (``augment``, ``views=2``) with a two-view loss on a 64-wide bias-free linear embedding:
   the contrastive hinge or SimCLR (:mod:`jaxlocal.objectives.contrastive`). ``ssl.scheme``:

   - ``e2e``: one head on the last layer, the whole encoder by backprop (or by feedback
     alignment, or by DTP: ``ssl.update_rule``);
   - ``gll``: one head per layer, the layers in turn for ``ssl.num_epochs`` each, the ones below
     frozen (:class:`~jaxlocal.schedules.BlockSchedule` 'sequential');
   - ``rll``: a random layer per minibatch, each with its own Adam, ``ssl.num_epochs`` × layers
     epochs in all ('random');
   - ``random``: no training (the random-encoder baseline).

   ``ssl.update_rule``: 'bp', 'rf' (errors sent down through a fixed random B) or 'urf' (B receives
   W's increment); 'dtp' trains an E2E encoder by difference target propagation
   (:mod:`jaxlocal.rules.dtp`).
2. ``probe``: a linear classifier per probed layer (``probe.blocks``) on the frozen features,
   computed once, trained with Adam (``probe.learning_rate``, ``probe.num_epochs``,
   ``probe.batch_size``) on the encoder's dataset or on ``probe.dataset`` (transfer). With
   ``probe.deform`` set, the finished probes are also tested on a deformed copy of the test set
   (the evaluator :func:`jaxlocal.evaluate.robustness`: robustness.json).
"""

from __future__ import annotations

import dataclasses

import jax
import optax

from jaxlocal import data as data_lib
from jaxlocal.blocks import Block, Learner, make_learner
from jaxlocal.models.heads import EmbeddingHead, ProbeHead
from jaxlocal.models.ssl import ENCODERS, encoder_layers
from jaxlocal.objectives.base import classifier
from jaxlocal.models.dtp import DTPForward, DTPInverse
from jaxlocal.objectives.contrastive import LOSSES, two_view_loss, two_view_objective
from jaxlocal.rules.dtp import make_dtp_learner
from jaxlocal.precision import compute_dtype
from jaxlocal.evaluate import probe_features, robustness
from jaxlocal.phases import Phase
from jaxlocal.schedules import BlockSchedule

SCHEMES = ('e2e', 'gll', 'rll', 'random')
UPDATES = ('bp', 'rf', 'urf', 'dtp')
# DTP encoders (SSL-DTP's family: every layer conv → max-pool → tanh, so every inverse is a
# stride-2 deconvolution): the side of the input must be divisible by 2^layers.
DTP_CHANNELS = {'mnist3': (32, 64, 128), 'conv6': (32, 64, 128, 256)}


def check_config(config) -> None:
  """Raises ValueError naming the first impossible field of ``ssl`` / ``probe``."""
  s, p = config.ssl, config.probe
  choices = {'model': (config.model, tuple(ENCODERS)), 'ssl.loss': (s.loss, LOSSES),
             'ssl.scheme': (s.scheme, SCHEMES), 'ssl.update_rule': (s.update_rule, UPDATES)}
  for name, (value, allowed) in choices.items():
    if value not in allowed:
      raise ValueError(f'unknown {name} {value!r}; choose one of {allowed}')
  if s.update_rule == 'dtp' and (s.scheme != 'e2e' or config.model not in DTP_CHANNELS):
    raise ValueError(f"ssl.update_rule='dtp' trains a whole encoder ({sorted(DTP_CHANNELS)}) from "
                     f"one top target with ssl.scheme='e2e'; got {config.model!r}, {s.scheme!r}")
  if s.embedding < 1 or s.num_epochs < 1 or s.batch_size < 2 or s.learning_rate <= 0:
    raise ValueError(f'need ssl.embedding >= 1, ssl.num_epochs >= 1, ssl.batch_size >= 2 and '
                     f'ssl.learning_rate > 0; got {s.embedding}, {s.num_epochs}, '
                     f'{s.batch_size}, {s.learning_rate}')
  if s.m1 < 0 or s.m2 <= 0 or s.negatives < 0 or s.negative_weight <= 0 or s.temperature <= 0:
    raise ValueError(f'need ssl.m1 >= 0, ssl.m2 > 0, ssl.negatives >= 0, '
                     f'ssl.negative_weight > 0, ssl.temperature > 0; got {s.m1}, {s.m2}, '
                     f'{s.negatives}, {s.negative_weight}, {s.temperature}')
  if config.augment.views != 2:
    raise ValueError(f'the SSL losses compare two views of every image; set augment.views=2 '
                     f'(got {config.augment.views})')
  if p.num_epochs < 1 or p.batch_size < 1 or p.learning_rate <= 0:
    raise ValueError(f'need probe.num_epochs >= 1, probe.batch_size >= 1 and '
                     f'probe.learning_rate > 0; got {p.num_epochs}, {p.batch_size}, '
                     f'{p.learning_rate}')
  depth = encoder_depth(config)
  if not p.blocks or any(not -depth <= b < depth for b in p.blocks):
    raise ValueError(f'probe.blocks {tuple(p.blocks)} must name layers of the {depth}-layer '
                     f'{config.model} encoder (0 … {depth - 1}, or negative from the end)')
  data_lib.Augment(**p.deform)  # validates the deformation


def encoder_depth(config) -> int:
  """The number of layers of the config's encoder (DTP builds its own, see DTP_CHANNELS)."""
  if config.ssl.update_rule == 'dtp':
    return len(DTP_CHANNELS[config.model])
  return len(ENCODERS[config.model][0])


def _loss_kwargs(s) -> dict:
  if s.loss == 'simclr':
    return {'temperature': s.temperature}
  return {'m1': s.m1, 'm2': s.m2, 'negatives': s.negatives,
          'negative_weight': s.negative_weight, 'grad_block': s.grad_block}


def encoder_learner(config, steps_per_epoch: int) -> tuple[Learner, int]:
  """The encoder phase of ``config``: ``(learner, num_epochs)``; ``learner.features(state, x)``
  gives every layer's output for normalised images x."""
  s = config.ssl
  optimizer = optax.adam(s.learning_rate)
  if s.update_rule == 'dtp':
    return _dtp_encoder(config, optimizer)
  layers, head_pool = encoder_layers(config.model, s.update_rule)
  dtype = compute_dtype(config.compute_dtype)
  objective = lambda: two_view_objective(
      s.loss, EmbeddingHead(s.embedding, head_pool, s.update_rule), **_loss_kwargs(s))
  names = [f'layer{i}' for i in range(len(layers))]
  if s.scheme == 'e2e':
    blocks = [Block(layer, name=n) for layer, n in zip(layers[:-1], names)]
    blocks.append(Block(layers[-1], objective(), name=names[-1]))
    learner = make_learner(blocks, optimizer, detach=False, compute_dtype=dtype)
    num_epochs = s.num_epochs
  else:
    blocks = [Block(layer, objective(), name=n) for layer, n in zip(layers, names)]
    schedule = (BlockSchedule('sequential', s.num_epochs * steps_per_epoch)
                if s.scheme == 'gll' else BlockSchedule('random', seed=config.seed))
    learner = make_learner(blocks, optimizer, schedule=schedule, compute_dtype=dtype)
    num_epochs = s.num_epochs * len(layers)
  return learner, num_epochs


def _dtp_encoder(config, optimizer):
  """CONV-pool-tanh layers of :data:`DTP_CHANNELS` trained by difference target propagation:
  stride-2 deconvolution inverses, the bias-free linear embedding on top."""
  s = config.ssl
  channels = DTP_CHANNELS[config.model]
  forwards = [DTPForward(c, s.dtp.downsample) for c in channels]
  inverses = [DTPInverse(c) for c in channels[:-1]]
  learner = make_dtp_learner(
      forwards, inverses, EmbeddingHead(s.embedding),
      two_view_loss(s.loss, **_loss_kwargs(s)), forward_optimizer=optimizer,
      inverse_optimizer=optax.adam(s.dtp.inverse_lr), top_optimizer=optimizer,
      target_step=s.dtp.target_step, noise_std=s.dtp.noise_std)
  return learner, s.num_epochs


def probe_blocks(num_classes: int, sizes: list[int], names: list[str]) -> list[Block]:
  """One linear probe block per probed layer, each reading its slice of the concatenated
  features (sizes in order); the last one's accuracy is the run's ``accuracy``."""
  bounds = [0]
  for size in sizes:
    bounds.append(bounds[-1] + size)
  return [Block(ProbeHead(num_classes, start, stop), classifier(), name=f'probe_{name}')
          for start, stop, name in zip(bounds[:-1], bounds[1:], names)]


def probe_dataset(config, dataset: data_lib.Dataset) -> data_lib.Dataset:
  """The probe's images: ``probe.dataset`` (transfer; same image shape) or the encoder's,
  cut to ``probe.train_examples`` training examples."""
  p = config.probe
  if not p.dataset:
    if not p.train_examples:
      return dataset
    return dataclasses.replace(dataset, x_train=dataset.x_train[:p.train_examples],
                               y_train=dataset.y_train[:p.train_examples])
  target = data_lib.load_dataset(p.dataset, data_dir=config.data_dir or None,
                                 train_examples=p.train_examples, image_size=config.image_size)
  if target.image_shape != dataset.image_shape:
    raise ValueError(f'probe.dataset {p.dataset!r} has images of shape {target.image_shape} but '
                     f'the encoder trains on {dataset.image_shape} ({config.dataset}); choose '
                     'datasets of one shape or set image_size')
  return target


def phases(config, dataset: data_lib.Dataset) -> list[Phase]:
  """The encoder phase (none for the random encoder), then the probe phase."""
  check_config(config)
  s = config.ssl
  steps = data_lib.steps_per_epoch(len(dataset.x_train), s.batch_size)
  encoder, encoder_epochs = encoder_learner(config, steps)
  depth = encoder_depth(config)
  layers = tuple(sorted({b % depth for b in config.probe.blocks}))

  example = data_lib.preprocess(None, dataset.x_train[:2], mean=dataset.mean, std=dataset.std)
  init = jax.eval_shape(encoder.init, jax.random.key(0), example)
  shapes = jax.eval_shape(encoder.features, init, example)
  sizes = [shapes[i].size // len(example) for i in layers]
  target = probe_dataset(config, dataset)
  probe = make_learner(probe_blocks(target.num_classes, sizes, [f'layer{i}' for i in layers]),
                       optax.adam(config.probe.learning_rate))
  deform = data_lib.Augment(**config.probe.deform)

  def probe_data(state, previous_data):
    del previous_data
    if state is None:  # the random-encoder baseline: the encoder as initialised
      state = jax.jit(encoder.init)(jax.random.key(config.seed), example)
    return probe_features(encoder, state, dataset, target, layers, deform=deform,
                          deform_seed=config.probe.deform_seed)

  result = []
  if s.scheme != 'random':
    result.append(Phase('encoder', encoder, encoder_epochs, s.batch_size,
                        data_lib.Augment(**config.augment)))
  evaluators = ([robustness(probe, config.probe.deform.to_dict(), config.eval_batch_size)]
                if deform != data_lib.Augment() else [])
  result.append(Phase('probe', probe, config.probe.num_epochs, config.probe.batch_size,
                      data=probe_data,
                      evaluators=evaluators))
  return result
