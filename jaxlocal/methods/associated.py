"""Associated Learning (Kao & Chen 2021; thesis, NCU 2020).

Block i has a forward function f_i, a bridge b_i, a target encoder g_i and a target decoder h_i.
With s_0 = x and t_0 = y (one-hot), and sg = stop_gradient between blocks:

  s_i = f_i(sg(s_{i−1})),   t_i = g_i(sg(t_{i−1}))
  associated loss   L_i  = MSE(b_i(s_i), sg(t_i))        trains f_i and b_i
  autoencoder loss  L'_i = MSE(h_i(t_i), sg(t_{i−1}))     trains g_i and h_i (t_i not stopped)

Every loss reaches only its own block, so one ``value_and_grad`` of Σ_i (L_i + L'_i) inside one
jitted step gives each group its local gradient; f and b train at ``learning_rate``, g and h at
``associated.target_lr_factor`` × it (2 in the reference). Inference runs the inverse path:
ŷ = h_1 ∘ … ∘ h_N(b_N(f_N ∘ … ∘ f_1(x))); shortcut inference from depth ℓ uses b_ℓ and h_ℓ … h_1.

Config fields: ``model`` ('mlp', 'cnn' or 'vgg'), ``weight_decay`` (L2), ``associated.width``
(n, the width of every target code and bridge), ``associated.target_lr_factor``,
``associated.backprop`` (the thesis' BP baseline instead), ``associated.standardize_input``
(per-image standardisation at the input, the CIFAR recipe), ``learning_rate``, ``num_epochs``.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxlocal import precision
from jaxlocal.blocks import Block, Learner, TrainState, apply_block, apply_gradients, make_learner
from jaxlocal.evaluate import Evaluator, metafeatures
from jaxlocal.models.associated import (Bridge, InversePathHead, SigmoidDense, apply,
                                        forward_modules)
from jaxlocal.objectives.base import accuracy, batch_mean, classifier
from jaxlocal.optim import fraction_decay, make_optimizer
from jaxlocal.phases import Phase, single_phase

FORWARD, TARGET = 'forward', 'target'
GROUP_OF_PART = {'f': FORWARD, 'b': FORWARD, 'g': TARGET, 'h': TARGET}


# the learning rate decays over num_epochs × steps: a rerun may not change it
SCHEDULE_FIELDS = ('num_epochs',)


def check_config(config) -> None:
  """Raises ValueError naming the first impossible field."""
  forward_modules(config.model, 1)  # validates the model name
  a = config.associated
  if a.width < 1 or a.target_lr_factor <= 0 or config.learning_rate <= 0:
    raise ValueError(f'need associated.width >= 1, associated.target_lr_factor > 0 and '
                     f'learning_rate > 0; got {a.width}, {a.target_lr_factor}, '
                     f'{config.learning_rate}')


def _mse(prediction: jax.Array, target: jax.Array, batch: dict) -> jax.Array:
  """Mean squared error over features, then over the batch's real examples (in float32)."""
  error = prediction.astype(jnp.float32) - target.astype(jnp.float32)
  return batch_mean(jnp.mean(jnp.square(error), axis=-1), batch)


def make_associated_learner(forwards: list[nn.Module], width: int, num_classes: int,
                            forward_optimizer: optax.GradientTransformation,
                            target_optimizer: optax.GradientTransformation, compute_dtype=None):
  """The AL network with the given f_1 … f_N: returns ``(learner, predict)``.

  Every layer computes in ``compute_dtype`` (None: float32); the losses are float32.

  ``state.params[i] = {'f', 'b', 'g', 'h'}``; h_1 outputs the ``num_classes`` class scores.
  ``state.batch_stats[i]`` holds f_i's BatchNorm statistics (ResNet_AL; empty otherwise).
  ``predict(state, x, depth)`` (B, K) is the inverse-path inference from block ``depth``
  (``depth = N`` is the full network); ``learner.features(state, x)`` is [s_1 … s_N].
  """
  depth = len(forwards)
  run = functools.partial(apply, dtype=compute_dtype)
  f_blocks = [Block(f, compute_dtype=compute_dtype) for f in forwards]
  bridges = [Bridge(width) for _ in range(depth)]
  encoders = [SigmoidDense(width) for _ in range(depth)]
  decoders = [SigmoidDense(num_classes if i == 0 else width) for i in range(depth)]
  tx = optax.multi_transform(  # one per block: each block keeps its own optimiser state
      {FORWARD: forward_optimizer, TARGET: target_optimizer},
      lambda block: {part: GROUP_OF_PART[part] for part in block})

  def forward(i, p, stats, s, train: bool):
    """s_i = f_i(s), and f_i's updated BatchNorm statistics (ResNet_AL)."""
    s, _, stats = apply_block(f_blocks[i], p, stats, s, train=train, rng=jax.random.key(0))
    return s, stats

  def init(rng, x):
    s, t = x, jnp.zeros((x.shape[0], num_classes), jnp.float32)
    params, stats = [], []
    for i in range(depth):
      kf, kb, kg, kh = jax.random.split(jax.random.fold_in(rng, i), 4)
      variables = forwards[i].init(kf, s)
      block = {'f': variables['params']}
      stats.append(variables.get('batch_stats', {}))
      s, _ = forward(i, block['f'], stats[-1], s, train=False)
      block['b'] = bridges[i].init(kb, s)['params']
      block['g'] = encoders[i].init(kg, t)['params']
      t = apply(encoders[i], block['g'], t)
      block['h'] = decoders[i].init(kh, t)['params']
      params.append(block)
    params = tuple(params)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=tuple(stats),
                      opt_state=tuple(tx.init(p) for p in params))

  def local_losses(params, batch_stats, s, t, batch, *, first: int = 0, train: bool):
    """Σ_i (L_i + L'_i) over blocks first … first + len(params) − 1 from their inputs (s, t),
    and (the per-block losses, [s_i], the last (s, t), the updated statistics)."""
    metrics, total, states, new_stats = {}, 0.0, [], []
    for i, p, stats in zip(range(first, first + len(params)), params, batch_stats):
      s_in, t_in = jax.lax.stop_gradient(s), jax.lax.stop_gradient(t)
      s, stats = forward(i, p['f'], stats, s_in, train)
      t = run(encoders[i], p['g'], t_in)
      assoc = _mse(run(bridges[i], p['b'], s), jax.lax.stop_gradient(t), batch)
      ae = _mse(run(decoders[i], p['h'], t), t_in, batch)
      metrics[f'block{i + 1}/assoc_loss'], metrics[f'block{i + 1}/ae_loss'] = assoc, ae
      total = total + assoc + ae
      states.append(s)
      new_stats.append(stats)
    return total, (metrics, states, (s, t), tuple(new_stats))

  def update(state, s, t, batch, first: int = 0):
    """One step of the blocks in ``state`` (first … ) on inputs (s, t): (state, metrics, (s, t))."""
    (loss, (metrics, _, out, stats)), grads = jax.value_and_grad(local_losses, has_aux=True)(
        state.params, state.batch_stats, s, t, batch, first=first, train=True)
    metrics['loss'] = loss
    state = apply_gradients(state, grads, (tx,) * len(grads), stats)
    return state, metrics, jax.lax.stop_gradient(out)

  def targets(batch):
    return jax.nn.one_hot(batch['label'], num_classes)

  def decode(params, s, ell):
    """h_1 ∘ … ∘ h_ℓ ∘ b_ℓ applied to s_ℓ: class scores (B, K)."""
    t = run(bridges[ell - 1], params[ell - 1]['b'], s)
    for i in reversed(range(ell)):
      t = run(decoders[i], params[i]['h'], t)
    return t.astype(jnp.float32)

  def train_step(state, batch, rng):
    del rng
    return update(state, batch['image'], targets(batch), batch)[:2]

  def eval_step(state, batch):
    loss, (metrics, states, _, _) = local_losses(state.params, state.batch_stats,
                                                 batch['image'], targets(batch), batch,
                                                 train=False)
    metrics['loss'] = loss
    for ell, s in enumerate(states, start=1):  # every depth decodes the s_ℓ computed above
      metrics[f'depth{ell}/accuracy'] = accuracy(decode(state.params, s, ell), batch)
    metrics['accuracy'] = metrics[f'depth{depth}/accuracy']
    return metrics

  def stage_step(a: int, b: int):
    """Blocks a … b-1 alone (a pipeline stage); (s_i, t_i) travel forward together."""
    del b  # the stage's state holds just its blocks
    def step(state, x, batch, rng):
      del rng
      s, t = (x, targets(batch)) if a == 0 else x
      state, metrics, out = update(state, s, t, batch, first=a)
      return state, out, metrics
    return step

  def predict(state, x, ell):
    s = x
    for i in range(ell):
      s, _ = forward(i, state.params[i]['f'], state.batch_stats[i], s, train=False)
    return decode(state.params, s, ell)

  def features(state, x):
    """s_1 … s_N, every forward function's output (inference mode)."""
    outputs, s = [], x
    for i in range(depth):
      s, _ = forward(i, state.params[i]['f'], state.batch_stats[i], s, train=False)
      outputs.append(s)
    return outputs

  return Learner(init, train_step, eval_step, stage_step=stage_step,
                 block_names=tuple(f'block{i + 1}' for i in range(depth)),
                 features=features), predict


def _forwards(config, backprop: bool) -> list[nn.Module]:
  a = config.associated
  return forward_modules(config.model, a.width, activation='relu' if backprop else 'elu',
                         standardize_input=a.standardize_input,
                         batch_norm=backprop and config.model == 'vgg')


def backprop_baseline(forwards: list[nn.Module], width: int, num_classes: int,
                      optimizer: optax.GradientTransformation, compute_dtype=None) -> Learner:
  """The thesis' BP baseline: the inference path of the AL network (f_1 … f_N, b_N, h_N … h_1)
  with ReLU (``forwards``), trained end to end on cross-entropy; the same parameter count as
  its prediction path."""
  blocks = [Block(f, name=f'block{i + 1}') for i, f in enumerate(forwards)]
  blocks.append(Block(InversePathHead(width, len(forwards), num_classes), classifier(),
                      name='output'))
  return make_learner(blocks, optimizer, detach=False, compute_dtype=compute_dtype)


def build(config, dataset, steps_per_epoch: int) -> Learner:
  """The AL learner of ``config`` (Adam with L2 ``weight_decay``; the thesis' step decay over
  the whole run), or its backprop baseline when ``associated.backprop``."""
  check_config(config)
  a = config.associated
  dtype = precision.compute_dtype(config.compute_dtype)
  total = steps_per_epoch * config.num_epochs
  adam = lambda lr: make_optimizer('adam', fraction_decay(lr, total),
                                   weight_decay=config.weight_decay)
  if a.backprop:
    return backprop_baseline(_forwards(config, True), a.width, dataset.num_classes,
                             adam(config.learning_rate), dtype)
  forward_optimizer = adam(config.learning_rate)
  target_optimizer = adam(a.target_lr_factor * config.learning_rate)
  learner, _ = make_associated_learner(_forwards(config, False), a.width, dataset.num_classes,
                                       forward_optimizer, target_optimizer, dtype)
  return learner


def metafeature_evaluator(learner: Learner, config) -> Evaluator:
  """Each block's inter/intra class distance ratio on the test set (at most
  ``associated.metafeature_examples`` examples), written to ``metafeatures.json``."""
  return Evaluator(
      'metafeatures',
      lambda state, data: metafeatures(learner, state, data,
                                       config.associated.metafeature_examples),
      summary=lambda ratios: 'inter/intra class distance ratio per block: ' + ' '.join(
          f'{name}={r["ratio"]:.3f}' for name, r in ratios.items()))


def phases(config, dataset) -> list[Phase]:
  """One phase: :func:`build`'s learner, then the blocks' class-distance metafeatures."""
  return single_phase(config, dataset, build,
                      evaluators=lambda learner: [metafeature_evaluator(learner, config)])
