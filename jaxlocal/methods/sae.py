"""Semi-supervised local training of VGG layer-stages with supervised autoencoders
(Theiler, Oktay & Frey).

The VGG Conv64–Conv64–Pool–Conv128–Conv128–Pool–Conv256–Conv256–Pool–Conv512–Conv512–FC1024–FC
is split into eight layer-stages (conv → BatchNorm → LeakyReLU, dropout ``dropout`` on the way
to the next stage) and the final FC layers. Stage i trains with its own supervised autoencoder
(:class:`jaxlocal.models.sae.SAEHead`, type ``sae.type``): reconstruction of the stage's input
on every example plus cross-entropy on the labelled ones; the FC layers train on the frozen
features with cross-entropy. One block learns at a time (:class:`~jaxlocal.schedules.
BlockSchedule`): ``sae.schedule='sequential'`` gives each of the nine blocks num_epochs / 9
epochs in turn, ``'wave'`` one epoch each, round and round. Each block has its own Adam:
``sae.stage_learning_rates`` (8e-4 … 1.6e-4) and ``sae.classifier_learning_rate`` (1e-4).

``sae.num_labels`` training examples keep their labels (0: all), drawn once from the seed and
kept in the checkpoint (:mod:`jaxlocal.semi_supervised`). Every evaluation reports the three
predictions of the paper's Table IV: ``predict_vgg`` (the FC output), ``predict_sae`` (the last
stage's SAE head) and ``predict_mean`` (the mean of every SAE head's class probabilities, the
run's ``accuracy``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from jaxlocal.blocks import Block, Learner, make_learner, param_count
from jaxlocal.models.sae import SAE_TYPES, FinalClassifier, KeepInput, SAEHead
from jaxlocal.models.vgg import vgg_blocks
from jaxlocal.objectives.base import accuracy, classifier
from jaxlocal.objectives.sae import supervised_autoencoder
from jaxlocal.phases import Phase, single_phase
from jaxlocal.precision import apply_module, compute_dtype
from jaxlocal.schedules import BlockSchedule
from jaxlocal.semi_supervised import with_labelled_subset

ARCH = (64, 64, 'M', 128, 128, 'M', 256, 256, 'M', 512, 512)
SCHEDULES = ('wave', 'sequential')


# sequential: each block trains num_epochs / 9 epochs, so a rerun may not change it
SCHEDULE_FIELDS = ('num_epochs',)


def check_config(config) -> None:
  """Raises ValueError naming the first impossible field of the ``sae`` section."""
  s = config.sae
  if s.type not in SAE_TYPES or s.schedule not in SCHEDULES:
    raise ValueError(f'sae.type must be one of {SAE_TYPES} and sae.schedule one of '
                     f'{SCHEDULES}; got {s.type!r}, {s.schedule!r}')
  stages = sum(w != 'M' for w in ARCH)
  if len(s.stage_learning_rates) != stages or min(s.stage_learning_rates) <= 0:
    raise ValueError(f'sae.stage_learning_rates needs {stages} positive values, one per stage; '
                     f'got {tuple(s.stage_learning_rates)}')
  if s.num_labels < 0 or s.width <= 0 or s.classifier_learning_rate <= 0:
    raise ValueError(f'need sae.num_labels >= 0 (0 = all), sae.width > 0 and '
                     f'sae.classifier_learning_rate > 0; got {s.num_labels}, {s.width}, '
                     f'{s.classifier_learning_rate}')
  if s.reconstruction_weight < 0 or s.prediction_weight < 0:
    raise ValueError('sae.reconstruction_weight and sae.prediction_weight must be >= 0')
  if s.schedule == 'sequential' and config.num_epochs % (stages + 1):
    raise ValueError(f'sequential training gives each of the {stages + 1} blocks the same '
                     f'number of epochs: num_epochs={config.num_epochs} must be a multiple of '
                     f'{stages + 1}')


def network(config, num_classes: int, image_size: int) -> list[Block]:
  """The eight SAE-trained stages (``stage1`` … ``stage8``) and the FC block (``output``)."""
  s = config.sae
  arch = tuple(w if w == 'M' else max(1, round(w * s.width)) for w in ARCH)
  stages = vgg_blocks(arch, input_size=image_size, nonlin='leakyrelu', dropout=config.dropout)
  objective = lambda: supervised_autoencoder(
      SAEHead(num_classes, s.type), reconstruction_weight=s.reconstruction_weight,
      prediction_weight=s.prediction_weight)
  blocks = [Block(KeepInput(stage), objective(), name=f'stage{i + 1}')
            for i, stage in enumerate(stages)]
  return blocks + [Block(FinalClassifier(num_classes), classifier(), name='output')]


def mean_prediction(head_logits: list[jax.Array]) -> jax.Array:
  """The mean of the heads' class probabilities: (B, K) from a list of (B, K) logits."""
  return jnp.mean(jnp.stack([jax.nn.softmax(l) for l in head_logits]), axis=0)


def build(config, dataset, steps_per_epoch: int) -> Learner:
  """The SAE-VGG learner of ``config``: one block at a time, semi-supervised."""
  check_config(config)
  s = config.sae
  # the blocks carry the dtype: the evaluation below runs them and their heads again
  dtype = compute_dtype(config.compute_dtype)
  blocks = [dataclasses.replace(b, compute_dtype=dtype)
            for b in network(config, dataset.num_classes, dataset.image_shape[0])]
  optimizers = [optax.adam(lr) for lr in s.stage_learning_rates]
  optimizers.append(optax.adam(s.classifier_learning_rate))
  epochs_per_turn = 1 if s.schedule == 'wave' else config.num_epochs // len(blocks)
  schedule = BlockSchedule('wave' if s.schedule == 'wave' else 'sequential',
                           epochs_per_turn * steps_per_epoch)
  local = make_learner(blocks, optimizers, schedule=schedule)
  heads = [SAEHead(dataset.num_classes, s.type) for _ in blocks[:-1]]

  def eval_step(state, batch):
    metrics = local.eval_step(state, batch)
    features = local.features(state, batch['image'])
    logits = [apply_module(head, p['aux'], *h, dtype=block.compute_dtype)[1]
              for head, block, p, h in zip(heads, blocks, state.params, features[:-1])]
    metrics['predict_vgg/accuracy'] = metrics['output/accuracy']
    metrics['predict_sae/accuracy'] = metrics[f'{blocks[-2].name}/accuracy']
    metrics['predict_mean/accuracy'] = accuracy(jnp.log(mean_prediction(logits)), batch)
    metrics['accuracy'] = metrics['predict_mean/accuracy']
    return metrics

  learner = local._replace(eval_step=eval_step)
  if s.num_labels:
    learner = with_labelled_subset(learner, dataset.y_train, s.num_labels)
  return learner


def parameter_counts(config, image_shape, num_classes: int) -> dict[str, int]:
  """The paper's Table I for ``config``: every stage with its SAE (``stage<i>``: the stage's
  conv and BatchNorm, the encoder, decoder and prediction layers), and ``vgg``, the network
  that remains (the stages and the FC layers)."""
  blocks = network(config, num_classes, image_shape[0])
  learner = make_learner(blocks, optax.sgd(0.1))
  state = jax.eval_shape(learner.init, jax.random.key(0), jnp.zeros((2, *image_shape)))
  counts = {b.name: param_count(p) for b, p in zip(blocks[:-1], state.params)}
  counts['vgg'] = param_count([p['forward'] for p in state.params])
  return counts


def print_parameter_counts(config, image_shape, num_classes: int) -> None:
  """Prints :func:`parameter_counts` in millions."""
  for name, count in parameter_counts(config, image_shape, num_classes).items():
    print(f'{name}: {count / 1e6:.2f}M')


def phases(config, dataset) -> list[Phase]:
  """One phase: :func:`build`'s learner on the config's loop fields."""
  return single_phase(config, dataset, build)
