"""Krotov & Hopfield (2019), "Unsupervised learning by competing hidden units".

Training is a sequence of phases (:class:`jaxlocal.phases.Phase`):

1. one unsupervised phase per Hebbian layer (``hebbian.hidden``, e.g. ``(2000,)``), each an
   explicit jitted update (:mod:`jaxlocal.rules.hebbian`, no autodiff) on the codes of the layer
   below, with the learning rate annealed linearly to 0 over ``hebbian.num_epochs``;
2. the supervised head on the frozen features h = f(W v), f(x) = xⁿ for x ≥ 0, computed once:
   c = tanh(β S h) with the loss Σ|c − t|ᵐ (Eq. 1), or a cross-entropy head.

``hebbian.backprop=True`` trains the same-width network end to end instead (the paper's SGD
baseline). Config sections: ``hebbian`` (the rule, with its epochs and batch) and ``head`` (the
top layer, with its own ``head.num_epochs`` and ``head.batch_size``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlocal import data as data_lib
from jaxlocal.blocks import Block, Learner, TrainState, make_learner
from jaxlocal.data.features import feature_dataset
from jaxlocal.models.krotov import PowerHead, PowerLayer, rectified_power
from jaxlocal.objectives.base import classifier
from jaxlocal.objectives.krotov import power_error
from jaxlocal.optim import piecewise_epochs
from jaxlocal.plots import plot_convergence, plot_receptive_fields
from jaxlocal.rules import hebbian as rule
from jaxlocal.precision import compute_dtype
from jaxlocal.phases import Phase

RULES = ('ranking', 'exact')
CODE_SCALES = ('example', 'dataset')


def check_config(config) -> None:
  """Raises ValueError naming the first impossible field of the ``hebbian`` / ``head`` sections."""
  h, head = config.hebbian, config.head
  choices = {'hebbian.rule': (h.rule, RULES), 'hebbian.input_norm': (h.input_norm, ('none', 'unit')),
             'head.loss': (head.loss, ('power', 'xent')), 'head.current': (head.current, ('dot', 'p')),
             'head.code_scale': (head.code_scale, CODE_SCALES)}
  for name, (value, allowed) in choices.items():
    if value not in allowed:
      raise ValueError(f'unknown {name} {value!r}; choose one of {allowed}')
  if not h.hidden or min(h.hidden) <= 0:
    raise ValueError(f'hebbian.hidden must list positive layer widths, got {tuple(h.hidden)}')
  if h.p < 2 or h.k < 2 or h.delta < 0 or h.lr <= 0 or h.num_epochs < 1 or h.batch_size < 1:
    raise ValueError('need hebbian.p >= 2, k >= 2, delta >= 0, lr > 0, num_epochs >= 1, '
                     f'batch_size >= 1; got p={h.p}, k={h.k}, delta={h.delta}, lr={h.lr}, '
                     f'num_epochs={h.num_epochs}, batch_size={h.batch_size}')
  if head.num_epochs < 1 or head.batch_size < 1:
    raise ValueError(f'need head.num_epochs >= 1 and head.batch_size >= 1; got '
                     f'{head.num_epochs}, {head.batch_size}')
  if head.power <= 0 or head.m < 1 or head.temperature <= 0:
    raise ValueError(f'need head.power > 0, head.m >= 1 and head.temperature > 0; got '
                     f'{head.power}, {head.m}, {head.temperature}')
  piecewise_epochs(tuple(head.lr_values), tuple(head.lr_boundaries), 1)  # validates the table


def _flat_inputs(x: jax.Array, unit_norm: bool) -> jax.Array:
  """(B, ...) -> (B, N); each example scaled to unit length when ``unit_norm`` (CIFAR recipe)."""
  v = x.reshape(x.shape[0], -1)
  return v / jnp.maximum(jnp.linalg.norm(v, axis=1, keepdims=True), 1e-12) if unit_norm else v


def hebbian_learner(h, num_hidden: int, steps_per_epoch: int, unit_norm: bool) -> Learner:
  """One Hebbian layer of ``num_hidden`` units trained by the configured rule; state.params['W']."""
  update = functools.partial(rule.ranking_update, k=h.k) if h.rule == 'ranking' else \
      functools.partial(rule.exact_update, w_inh=h.w_inh, h_star=h.h_star, tol=h.tol)

  def init(rng, x):
    W = rule.init_weights(rng, num_hidden, math.prod(x.shape[1:]), std=h.init_std)
    return TrainState(step=jnp.zeros((), jnp.int32), params={'W': W}, batch_stats=(),
                      opt_state=())

  def train_step(state, batch, rng):
    del rng
    lr = rule.annealed_lr(h.lr, state.step // steps_per_epoch, h.num_epochs)
    W, metrics = update(state.params['W'], _flat_inputs(batch['image'], unit_norm), lr=lr,
                        p=h.p, delta=h.delta, prec=h.prec)
    return state.replace(step=state.step + 1, params={'W': W}), {**metrics, 'learning_rate': lr}

  def eval_step(state, batch):
    del batch
    return {'sphere_deviation': rule.sphere_deviation(state.params['W'], h.p)}

  def check(state):
    rule.check_weights(state.params['W'], h.p)

  return Learner(init, train_step, eval_step, check)


def hebbian_codes(W: jax.Array, v: jax.Array, *, current: str, p: float, n: float,
                  per_example: bool) -> jax.Array:
  """f(W·v) = max(W·v, 0)ⁿ (or f of the p-current ⟨W, v⟩_p), (B, K) from inputs v (B, N);
  with ``per_example`` each row divided by its largest entry (see :func:`layer_features`)."""
  h = rectified_power(v @ W.T if current == 'dot' else rule.currents(W, v, p), n)
  if per_example:
    h = h / jnp.maximum(jnp.max(h, axis=-1, keepdims=True), 1e-30)
  return h


def layer_features(W, dataset: data_lib.Dataset, *, current: str, p: float, n: float,
                   unit_norm: bool, code_scale: str = 'dataset',
                   batch_size: int = 1000) -> data_lib.Dataset:
  """The dataset of f(W·v) (or f of the p-current), computed once: x (N, 1, 1, K) float32.

  hⁿ reaches ~10⁷ on MNIST for n = 4.5, which saturates any tanh head, so the codes are scaled
  (the paper leaves this open):

  - ``'example'``: each example's codes divided by its largest, i.e. f(W v / max_μ (W v)_μ)
    since f is homogeneous of degree n. The winning unit is exactly 1 and the head becomes
    invariant to the input's contrast v → αv, which would otherwise scale h by αⁿ. On MNIST it
    fits the training set as the paper's head does (0.3 % train error, 1.72 % test, against
    1.43 % / 2.16 % for ``'dataset'``).
  - ``'dataset'``: one constant, the mean over training examples of each example's largest code;
    it only changes the initial scale of the next layer's weights (used between stacked layers).
  """
  if code_scale not in CODE_SCALES:
    raise ValueError(f'unknown code_scale {code_scale!r}; choose one of {CODE_SCALES}')

  def codes(x):
    v = _flat_inputs(data_lib.preprocess(None, x, mean=dataset.mean, std=dataset.std), unit_norm)
    return hebbian_codes(W, v, current=current, p=p, n=n,
                         per_example=code_scale == 'example')

  result = feature_dataset(dataset, codes, batch_size=batch_size,
                           source=f'{dataset.source} → codes of a {W.shape[0]}-unit Hebbian layer')
  if code_scale == 'example':
    return result
  scale = max(float(result.x_train.max(axis=-1).mean()), 1e-30)
  return dataclasses.replace(result, x_train=result.x_train / scale,
                             x_test=result.x_test / scale)


def _raw_pixels(dataset: data_lib.Dataset) -> data_lib.Dataset:
  """Pixels scaled to [0, 1] with no centring, as the rule expects."""
  channels = dataset.image_shape[-1]
  return dataclasses.replace(dataset, mean=np.zeros(channels, np.float32),
                             std=np.ones(channels, np.float32))


def _head(config, num_classes: int) -> Block:
  head = config.head
  objective = power_error(num_classes, head.m) if head.loss == 'power' else classifier()
  return Block(PowerHead(num_classes, head.temperature, tanh=head.loss == 'power'), objective,
               name='output')


def _head_optimizer(config, steps_per_epoch: int) -> optax.GradientTransformation:
  return optax.adam(piecewise_epochs(tuple(config.head.lr_values),
                                     tuple(config.head.lr_boundaries), steps_per_epoch))


def _plot_first_layer(image_shape, p: float):
  def finish(state, workdir, records):
    plot_receptive_fields(np.asarray(state.params['W']), image_shape,
                          os.path.join(workdir, 'receptive_fields.png'))
    curve = [(r['epoch'], r['test/sphere_deviation']) for r in records]
    plot_convergence(curve, p, os.path.join(workdir, 'hebbian_convergence.png'))
  return finish


def phases(config, dataset: data_lib.Dataset) -> list[Phase]:
  """The phases of the config: Hebbian layers then the head, or the end-to-end baseline."""
  check_config(config)
  h = config.hebbian
  num_classes = dataset.num_classes
  head_steps = data_lib.steps_per_epoch(len(dataset.x_train), config.head.batch_size)
  if h.backprop:
    blocks = [Block(PowerLayer(h.hidden[0], config.head.power), name='hidden'),
              _head(config, num_classes)]
    learner = make_learner(blocks, _head_optimizer(config, head_steps), detach=False,
                           compute_dtype=compute_dtype(config.compute_dtype))
    return [Phase('', learner, config.head.num_epochs, config.head.batch_size,
                  data=lambda state, data: _raw_pixels(data))]

  rule_steps = data_lib.steps_per_epoch(len(dataset.x_train), h.batch_size)
  result = []
  for i, width in enumerate(h.hidden):
    first = i == 0
    if first:
      prepare = lambda state, data: _raw_pixels(data)
    else:
      prepare = functools.partial(_codes_of_previous, p=h.p, n=h.code_power,
                                  unit_norm=first_layer_unit_norm(h, i - 1))
    result.append(Phase(f'hebbian{i + 1}', hebbian_learner(h, width, rule_steps,
                                                           unit_norm=first_layer_unit_norm(h, i)),
                        h.num_epochs, h.batch_size, data=prepare,
                        finish=_plot_first_layer(dataset.image_shape, h.p) if first else None))
  head_learner = make_learner([_head(config, num_classes)], _head_optimizer(config, head_steps),
                              compute_dtype=compute_dtype(config.compute_dtype))
  result.append(Phase('head', head_learner, config.head.num_epochs, config.head.batch_size,
                      data=functools.partial(
                          _codes_of_previous, p=h.p, n=config.head.power,
                          unit_norm=first_layer_unit_norm(h, len(h.hidden) - 1),
                          current=config.head.current, code_scale=config.head.code_scale)))
  return result


def first_layer_unit_norm(h, layer: int) -> bool:
  """Unit-length inputs apply to the pixels, i.e. to the first Hebbian layer only."""
  return layer == 0 and h.input_norm == 'unit'


def _codes_of_previous(state, data, *, p, n, unit_norm, current='dot', code_scale='dataset'):
  return layer_features(state.params['W'], data, current=current, p=p, n=n, unit_norm=unit_norm,
                        code_scale=code_scale)
