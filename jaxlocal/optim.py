"""Optimisers and learning-rate schedules built from config fields."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax

from jaxlocal.rules.feedback import FEEDBACK
from jaxlocal.objectives.local_error import LABEL_PROJECTION

OPTIMIZERS = ('adam', 'amsgrad', 'sgd')
# Random matrices kept in the parameters but not decayed: feedback-alignment B (fixed, or moving
# by exactly W's increment) and the bpf label projection (fixed).
UNDECAYED = (FEEDBACK, LABEL_PROJECTION)


def decayed(params):
  """The weight-decay mask: False for the leaves named in :data:`UNDECAYED`."""
  def keep(path, _):
    return not (path and getattr(path[-1], 'key', None) in UNDECAYED)
  return jax.tree_util.tree_map_with_path(keep, params)


def step_decay(learning_rate: float, milestones: Sequence[int], factor: float,
               steps_per_epoch: int) -> optax.Schedule:
  """The reference's per-epoch step decay: lr(epoch e, 1-based) = lr₀ · factor^#{m ≤ e−1}.

  As a function of the 0-based optimiser step k, epoch e − 1 = k // steps_per_epoch.
  """
  if not milestones:
    return optax.constant_schedule(learning_rate)
  bounds = jnp.asarray(sorted(milestones), jnp.int32)

  def schedule(count):
    epochs_done = count // steps_per_epoch
    return learning_rate * factor ** jnp.sum(epochs_done >= bounds)

  return schedule


def fraction_decay(learning_rate: float, total_steps: int,
                   fractions: Sequence[float] = (0.4, 0.6, 0.8, 0.9),
                   factors: Sequence[float] = (0.1, 0.1, 0.1, 0.5)) -> optax.Schedule:
  """lr multiplied by ``factors[j]`` once ``fractions[j]`` of ``total_steps`` are done: the
  Associated Learning thesis' schedule (×0.1 at 40, 60 and 80 %, ×0.5 at 90 %)."""
  if len(fractions) != len(factors):
    raise ValueError(f'{len(fractions)} fractions need as many factors, got {len(factors)}')
  return optax.piecewise_constant_schedule(
      learning_rate, {int(f * total_steps): x for f, x in zip(fractions, factors)})


def piecewise_epochs(values: Sequence[float], boundaries: Sequence[int],
                     steps_per_epoch: int) -> optax.Schedule:
  """lr = values[j] during the epochs after boundaries[j-1] (0-based epoch e uses the value of
  the number of boundaries ≤ e), e.g. Krotov–Hopfield's head: 1e-3 until epoch 100, then 5e-4…"""
  if len(values) != len(boundaries) + 1:
    raise ValueError(f'{len(values)} learning rates need {len(values) - 1} boundaries, '
                     f'got {len(boundaries)}')
  if list(boundaries) != sorted(boundaries):
    raise ValueError(f'learning-rate boundaries must increase, got {tuple(boundaries)}')
  table = jnp.asarray(values, jnp.float32)
  bounds = jnp.asarray(boundaries, jnp.int32)

  def schedule(count):
    return table[jnp.sum(count // steps_per_epoch >= bounds)]

  return schedule


def make_optimizer(name: str, schedule: optax.Schedule, *, weight_decay: float = 0.0,
                   momentum: float = 0.0) -> optax.GradientTransformation:
  """Adam / AMSGrad / SGD with PyTorch-style (L2, added to the gradient) weight decay, which
  skips the random matrices of :data:`UNDECAYED`."""
  if name == 'adam':
    tx = optax.adam(schedule)
  elif name == 'amsgrad':
    tx = optax.amsgrad(schedule)
  elif name == 'sgd':
    tx = optax.sgd(schedule, momentum=momentum or None)
  else:
    raise ValueError(f'unknown optimizer {name!r}; choose one of {OPTIMIZERS}')
  if weight_decay:
    tx = optax.chain(optax.add_decayed_weights(weight_decay, mask=decayed), tx)
  return tx


def optimizer_from_config(config, steps_per_epoch: int) -> optax.GradientTransformation:
  """The optimiser the config asks for (fields ``optimizer``, ``learning_rate``,
  ``lr_decay_milestones``, ``lr_decay_factor``, ``weight_decay``, ``momentum``)."""
  schedule = step_decay(config.learning_rate, tuple(config.lr_decay_milestones),
                        config.lr_decay_factor, steps_per_epoch)
  return make_optimizer(config.optimizer, schedule, weight_decay=config.weight_decay,
                        momentum=config.momentum)
