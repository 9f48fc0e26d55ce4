"""Blocks, and the one jitted step that trains every block from its own local objective.

A network is a sequence of :class:`Block`. Block *i* owns ``params[i] = {'forward': …, 'aux': …}``
(the layer the finished network keeps, and the heads only its objective uses) and its BatchNorm
statistics ``batch_stats[i]``. It reads ``stop_gradient(out[i-1])``, computes ``h[i]`` (what its
objective sees) and ``out[i]`` (what the next block reads, e.g. after dropout and pooling).

Because of the ``stop_gradient``, ``jax.grad`` of ``Σ_i loss_i`` *is* the set of local gradients:
one step updates every block and no gradient crosses a block boundary. With ``detach=False`` the
same blocks train by ordinary global backprop (``glob``: only the output block has an
objective; ``glob+sim``: the hidden blocks' objectives are backpropagated through everything
below them), so local and global training compare like for like.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxlocal.rules.feedback import FEEDBACK, cosine_angle, with_true_feedback
from jaxlocal.ordering import after
from jaxlocal.objectives.base import LocalObjective, LossFn, as_objective
from jaxlocal.precision import cast_floating, computing_in, like
from jaxlocal.schedules import BlockSchedule


@dataclasses.dataclass(frozen=True)
class Block:
  """One locally trained unit.

  Attributes:
    forward: a Flax Linen module, ``(x) -> h`` or ``(x) -> (h, out)``, optionally taking a
      ``train`` keyword (dropout and BatchNorm behaviour). ``h`` goes to the objective, ``out``
      (default ``h``) to the next block.
    objective: a :class:`LocalObjective`, a plain ``(aux_params, h, batch) -> (loss, metrics)``
      function, or None for a block trained only through the gradients of blocks above it
      (global backprop).
    name: prefix of the block's metrics; defaults to ``block<i>``.
    compute_dtype: the dtype ``forward`` and the objective's heads compute in
      (:mod:`jaxlocal.precision`); None = that of the parameters. The objective always
      receives float32.
  """

  forward: nn.Module
  objective: LocalObjective | LossFn | None = None
  name: str = ''
  compute_dtype: Any = None


@struct.dataclass
class TrainState:
  """Everything a step changes and a checkpoint keeps: ``params``, ``batch_stats`` and
  ``opt_state`` are pytrees whose layout is the method's own (see :class:`Learner`; a learner
  of :func:`make_learner` keeps tuples with one entry per block). ``extras`` holds what a
  method keeps beside its parameters (e.g. which training examples are labelled,
  :mod:`jaxlocal.semi_supervised`)."""

  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  extras: Any = ()


class Learner(NamedTuple):
  """A method, as the training loop sees it (all three are pure and jit-able).

  init(rng, x) -> TrainState, from an example input batch x;
  train_step(state, batch, rng) -> (state, metrics), metrics holding at least the scalar
    ``loss`` (the loop watches it for NaN);
  eval_step(state, batch) -> metrics, every metric a mean over the batch's unmasked examples;
  the network's prediction is reported as ``accuracy``;
  check(state) -> None, optional and run on the host after every epoch: raises a
    FloatingPointError subclass to stop training before that epoch is saved (e.g. collapsed
    weights that are not NaN).

  Under a one-block ``schedule``, ``block_steps[i]`` is the train step of block i alone and
  ``train_step`` picks one by ``schedule.active_block(state.step)`` with ``lax.switch``. The
  training loop instead compiles every ``block_steps[i]`` and picks on the host: XLA's CPU
  backend runs convolution gradients inside a conditional ~30× slower than outside.

  ``block_names`` name the blocks of a learner built from blocks. Where they learn all at once
  and locally, ``stage_step(a, b)`` is the train step of blocks a … b-1 alone on their input:
  ``(state, x, batch, rng) -> (state, out, metrics)``, where ``state`` holds only those blocks
  (per-block tuples ``params``, ``batch_stats``, ``opt_state``) and ``out`` is what block b
  reads, computed before the update. :func:`jaxlocal.parallel.stages.stages_of` cuts any such
  learner into pipeline stages.

  ``features(state, x) -> [h_1, …]``: every block's (layer's) representation of normalised
  inputs x (B, H, W, C) in inference mode, input to output (probes, metafeatures, t-SNE);
  ``block_names``, where set, name them.

  Each method keeps its own ``state.params`` layout, because its parameters play different
  roles:

  - :func:`make_learner` (local error, SSL, SAE, the BP baselines): a tuple with one
    ``{'forward': …, 'aux': …}`` per block (the kept layer and its objective's heads);
  - Associated Learning (:mod:`jaxlocal.methods.associated`): a tuple with one
    ``{'f', 'b', 'g', 'h'}`` per block (forward function, bridge, target encoder, decoder),
    two optimiser groups;
  - Hebbian (:mod:`jaxlocal.methods.hebbian`): ``{'W': (K, N)}``, a weight matrix updated by
    an explicit rule with no optimiser;
  - DTP (:mod:`jaxlocal.rules.dtp`): ``{'layers': ({'forward', 'inverse'}, …), 'top': …}``,
    three optimiser groups.
  """

  init: Callable[[jax.Array, jax.Array], TrainState]
  train_step: Callable[[TrainState, dict, jax.Array], tuple[TrainState, dict]]
  eval_step: Callable[[TrainState, dict], dict]
  check: Callable[[TrainState], None] | None = None
  block_steps: tuple | None = None
  schedule: BlockSchedule | None = None
  block_names: tuple[str, ...] = ()
  stage_step: Callable[[int, int], Callable] | None = None
  features: Callable[[TrainState, jax.Array], list] | None = None


def _normalise(blocks: Sequence[Block]) -> tuple[Block, ...]:
  if not blocks:
    raise ValueError('a network needs at least one block')
  out = []
  for i, block in enumerate(blocks):
    if not isinstance(block, Block):
      raise TypeError(f'block {i} is {type(block).__name__}, expected jaxlocal.Block')
    out.append(dataclasses.replace(block, objective=as_objective(block.objective),
                                   name=block.name or f'block{i}'))
  names = [b.name for b in out]
  if len(set(names)) != len(names):
    raise ValueError(f'block names must be unique, got {names}')
  return tuple(out)


def _takes_train(module: nn.Module) -> bool:
  return 'train' in inspect.signature(module.__call__).parameters


def apply_block(block: Block, params, stats, x, *, train: bool, rng):
  """Applies one block's forward part: returns (h, out, new_batch_stats); ``h`` in float32
  when the block computes in another dtype."""
  dtype = block.compute_dtype
  if dtype is not None:
    params, x = cast_floating(params, dtype), cast_floating(x, dtype)
  variables = {'params': params}
  if stats:
    variables['batch_stats'] = stats
  kwargs = {'train': train} if _takes_train(block.forward) else {}
  if train:
    result, mutated = block.forward.apply(variables, x, rngs={'dropout': rng},
                                          mutable=['batch_stats'], **kwargs)
    stats = like(mutated.get('batch_stats', stats), stats)
  else:
    result = block.forward.apply(variables, x, **kwargs)
  h, out = result if isinstance(result, tuple) else (result, result)
  if dtype is not None:
    h = cast_floating(h, jnp.float32)
  return h, out, stats


def run_blocks(blocks: Sequence[Block], params, batch_stats, batch: dict, *, train: bool,
               rng: jax.Array, detach: bool = True):
  """The forward pass of every block and its objective.

  Returns ``(losses, metrics, batch_stats, h_last, out_last)``: one loss per block (0 where a
  block has no objective), metrics named ``<block>/<metric>`` plus the output block's
  ``accuracy``, the updated statistics, the last block's ``h`` (the network's logits) and its
  ``out`` (what a block after it would read).
  """
  x = batch['image']
  losses, metrics, new_stats = [], {}, []
  for i, block in enumerate(blocks):
    if detach:
      x = jax.lax.stop_gradient(x)
    h, x, stats = apply_block(block, params[i]['forward'], batch_stats[i], x, train=train,
                           rng=jax.random.fold_in(rng, i))
    new_stats.append(stats)
    loss, block_metrics = block_objective(block, params[i]['aux'], h, batch)
    metrics.update(block_metrics)
    losses.append(loss)
  return losses, _with_accuracy(blocks, metrics), tuple(new_stats), h, x


def block_objective(block: Block, aux_params, h: jax.Array, batch: dict):
  """``(loss, metrics)`` of one block's objective on its ``h``: the scalar loss (0 without an
  objective) and its metrics named ``<block>/<metric>``, ``<block>/loss`` among them.

  The objective runs under the block's ``compute_dtype``
  (:func:`jaxlocal.precision.computing_in`): its heads compute in that dtype through
  :func:`jaxlocal.precision.apply_module`. Every step calls objectives through here."""
  if block.objective is None:
    return jnp.zeros((), jnp.float32), {}
  with computing_in(block.compute_dtype):
    loss, metrics = block.objective.loss(aux_params, h, batch)
  return loss, {f'{block.name}/loss': loss,
                **{f'{block.name}/{k}': v for k, v in metrics.items()}}


def _with_accuracy(blocks: Sequence[Block], metrics: dict) -> dict:
  """``metrics`` plus the network's ``accuracy``: the output block's, when it reports one."""
  if f'{blocks[-1].name}/accuracy' in metrics:
    metrics['accuracy'] = metrics[f'{blocks[-1].name}/accuracy']
  return metrics


def _forward_features(blocks: Sequence[Block], params, batch_stats, x: jax.Array) -> list:
  """Every block's ``h`` for inputs ``x`` in inference mode (a block learner's ``features``)."""
  features = []
  for i, block in enumerate(blocks):
    h, x, _ = apply_block(block, params[i]['forward'], batch_stats[i], x, train=False,
                       rng=jax.random.key(0))
    features.append(h)
  return features


def init_blocks(blocks: Sequence[Block], rng: jax.Array, x: jax.Array):
  """Initialises every block from an example input: returns (params, batch_stats) tuples."""
  params, stats = [], []
  for i, block in enumerate(blocks):
    k_forward, k_aux = jax.random.split(jax.random.fold_in(rng, i))
    kwargs = {'train': False} if _takes_train(block.forward) else {}
    variables = block.forward.init({'params': k_forward, 'dropout': k_forward}, x, **kwargs)
    block_stats = variables.get('batch_stats', {})
    h, x, _ = apply_block(block, variables['params'], block_stats, x, train=False, rng=k_forward)
    aux = block.objective.init(k_aux, h) if block.objective is not None else {}
    params.append({'forward': variables['params'], 'aux': aux})
    stats.append(block_stats)
  return tuple(params), tuple(stats)


def has_feedback(params) -> bool:
  """Whether any layer in ``params`` is trained by feedback alignment."""
  return any(getattr(path[-1], 'key', None) == FEEDBACK
             for path, _ in jax.tree_util.tree_leaves_with_path(params))


def alignment_angles(blocks: Sequence[Block], params, batch_stats, batch: dict, *,
                     detach: bool = True) -> dict:
  """``<block>/fa_angle``: the angle (degrees) between the update feedback alignment gives each
  block's forward parameters and the true gradient of the same losses (B replaced by W).

  0° is backprop; below 90° the feedback-alignment update still descends the loss.
  """
  def total(p):
    losses = run_blocks(blocks, p, batch_stats, batch, train=False,
                        rng=jax.random.key(0), detach=detach)[0]
    return sum(losses)

  aligned = jax.grad(total)(params)
  true = jax.grad(total)(with_true_feedback(params))
  return {f'{b.name}/fa_angle': cosine_angle(aligned[i]['forward'], true[i]['forward'])
          for i, b in enumerate(blocks)}


def update_blocks(blocks: Sequence[Block], optimizers: Sequence[optax.GradientTransformation],
                  state: TrainState, batch: dict, rng: jax.Array, *, detach: bool = True,
                  in_order: bool = False):
  """One step of every block on ``batch``: returns ``(state, metrics, out)``, ``out`` being the
  last block's output (train mode, before the update), which a pipeline hands on.

  ``in_order`` (local learning only) computes the same step block after block
  (:func:`update_blocks_in_order`), so that each block's activations are freed before the next
  block's forward; otherwise one gradient of the summed losses updates every block."""
  if in_order:
    if not detach:
      raise ValueError('in_order steps train each block on its own objective; global backprop '
                       '(detach=False) needs the summed step: pass in_order=False')
    return update_blocks_in_order(blocks, optimizers, state, batch, rng)

  def total_loss(params):
    losses, metrics, stats, _, out = run_blocks(blocks, params, state.batch_stats, batch,
                                                train=True, rng=rng, detach=detach)
    return sum(losses), (metrics, stats, out)

  (loss, (metrics, stats, out)), grads = jax.value_and_grad(total_loss, has_aux=True)(
      state.params)
  metrics['loss'] = loss
  return apply_gradients(state, grads, optimizers, stats), metrics, jax.lax.stop_gradient(out)


def update_blocks_in_order(blocks: Sequence[Block],
                           optimizers: Sequence[optax.GradientTransformation], state: TrainState,
                           batch: dict, rng: jax.Array):
  """The local step of :func:`update_blocks` computed block after block: block i's forward,
  objective, gradient and optimiser update all happen before block i+1's forward.

  What is computed is the summed step's: block i+1 reads block i's output from before block i's
  update, with the same dropout keys, and block i's gradient is that of its own loss. Only the
  schedule differs, made by data dependencies (:func:`jaxlocal.ordering.after`): block i's
  backward pass starts from a seed computed after block i's output (e.g. pooled), so its larger
  ``h`` need not outlive the backward; and block i+1 runs after every gradient of block i, so
  block i's activations are dead before it starts. Block i+1's parameters carry that order (so
  their casts to a narrower compute dtype, which XLA:CPU made at the step's start and held, are
  made when the block starts), and so does its input (``out + c``) unless block i pools: XLA
  computes an unpooled ``out + c`` after the backward from block i's last map (alive until then
  anyway for the BatchNorm's gradient) rather than keep a copy of ``h``'s size, while a pooled
  output, made in block i's forward pass and a quarter of ``h``, waits through the backward
  (:func:`_after_if_converted` for the exception). The step's peak temporary memory is then that
  of its largest block (its forward, heads and backward) instead of every block's activations at
  once (docs/results.md, "Block-ordered local step").
  """
  x = batch['image']
  losses, metrics, params, stats, opt_state = [], {}, [], [], []
  block_params, h_sizes = state.params[0], {}
  for i, (block, tx) in enumerate(zip(blocks, optimizers)):
    def block_loss(p, x, i=i, block=block):
      h, out, new_stats = apply_block(block, p['forward'], state.batch_stats[i], x, train=True,
                                      rng=jax.random.fold_in(rng, i))
      h_sizes[i] = _size(h)  # static, read below
      loss, block_metrics = block_objective(block, p['aux'], h, batch)
      return loss, (block_metrics, new_stats, out)

    x = jax.lax.stop_gradient(x)
    loss, backward, (block_metrics, new_stats, out) = jax.vjp(
        lambda p: block_loss(p, x), block_params, has_aux=True)
    # The backward starts from a seed computed after ``out`` (the next block's input).
    (grads,) = backward(after(jnp.ones_like(loss), out))
    new_params, new_opt_state = optimizer_step(tx, state.params[i], grads, state.opt_state[i])
    x = out
    if i + 1 < len(blocks):
      block_params = after(state.params[i + 1], grads)
      x = after(out, grads) if _size(out) >= h_sizes[i] else _after_if_converted(out, grads)
    losses.append(loss)
    metrics.update(block_metrics)
    params.append(new_params)
    stats.append(new_stats)
    opt_state.append(new_opt_state)
  metrics = _with_accuracy(blocks, metrics)
  metrics['loss'] = sum(losses)
  state = state.replace(step=state.step + 1, params=tuple(params), batch_stats=tuple(stats),
                        opt_state=tuple(opt_state))
  return state, metrics, jax.lax.stop_gradient(x)


def _after_if_converted(out, grads):
  """A pooled ``out``, computed after ``grads`` where XLA converts it anyway before the next
  block's convolution: a float narrower than float32 on CPU, which computes it in float32. Tied,
  that float32 copy (twice out's size) is made after block i's backward pass instead of held
  through it (VGG8B bfloat16 pred at batch 128: 420 → 373 MiB). Otherwise ``out`` as it is:
  ``out + c`` of a float32 ``out`` was recomputed from block i's larger map, which then lived
  through the backward (pred 359 → 412 MiB)."""
  if all(leaf.dtype.itemsize >= 4 for leaf in jax.tree.leaves(out)):
    return out
  return jax.lax.platform_dependent(out, grads, cpu=after, default=lambda out, grads: out)


def _size(tree) -> int:
  """The number of elements of a pytree of arrays."""
  return sum(leaf.size for leaf in jax.tree.leaves(tree))


def optimizer_step(tx: optax.GradientTransformation, params, grads, opt_state):
  """One optimiser step of ``params`` (any pytree: a block, a DTP layer, the top):
  ``(new_params, new_opt_state)``. Every method's update goes through it.

  Every leaf's update waits for every gradient (:func:`jaxlocal.ordering.after`): a parameter
  whose last read in the backward pass feeds another leaf's gradient (the sim head's kernel,
  read for the gradient of the block's output; a feedback-alignment weight) is then overwritten
  in place after that read. Otherwise XLA copies it at the step's start and holds the copy to
  the end (VGG8B predsim at batch 128: five sim kernels, 31 MiB, in the peak). And the new
  optimiser state is made after the new parameters: for a leaf whose update is cheap (a fixed
  feedback matrix, gradient 0), XLA fused the moments' update into the parameter's, which then
  read the old moments after their in-place update, so XLA copied them too (bpf heads: 8 MiB)."""
  grads = after(grads, grads)
  updates, opt_state = tx.update(grads, opt_state, params)
  params = optax.apply_updates(params, updates)
  return params, after(opt_state, params)


def apply_gradients(state: TrainState, grads: tuple,
                    optimizers: Sequence[optax.GradientTransformation],
                    batch_stats: tuple) -> TrainState:
  """Block i's optimiser applied to its gradients ``grads[i]`` (each block keeps its own
  optimiser state), the new BatchNorm statistics stored and the step counted."""
  params, opt_state = [], []
  for tx, p, g, s in zip(optimizers, state.params, grads, state.opt_state):
    p, s = optimizer_step(tx, p, g, s)
    params.append(p)
    opt_state.append(s)
  return state.replace(step=state.step + 1, params=tuple(params), batch_stats=batch_stats,
                       opt_state=tuple(opt_state))


def make_learner(blocks: Sequence[Block],
                 optimizers: optax.GradientTransformation | Sequence[optax.GradientTransformation],
                 *, detach: bool = True, schedule: BlockSchedule = BlockSchedule(),
                 compute_dtype=None, in_order: bool = True) -> Learner:
  """Builds the :class:`Learner` that trains ``blocks``.

  Args:
    blocks: the network, input to output.
    optimizers: one optax transformation per block, or one used for every block (each block
      still keeps its own state).
    detach: True for local learning (``stop_gradient`` before every block); False for global
      backprop of the summed objectives.
    schedule: which blocks learn on a step. Under a one-block schedule (greedy, wave,
      randomized) the step runs the blocks below the active one forward in inference mode and
      computes the loss, gradient and update of the active block alone; its train metrics
      are ``loss`` and ``active_block``, and its evaluation ``loss`` is the same block's (the
      mean over blocks under 'random'), every block's own in ``<name>/loss``.
    compute_dtype: the dtype of every block's forward pass and of its objective's heads (e.g.
      ``jnp.bfloat16``); parameters, optimiser states and losses stay float32
      (:mod:`jaxlocal.precision`).
    in_order: with ``detach=True``, compute the step block after block
      (:func:`update_blocks_in_order`: the same result, each block's activations freed before
      the next block's forward) instead of as one gradient of the summed losses. Global
      backprop always takes the summed step.
  """
  blocks = _normalise(blocks)
  if compute_dtype is not None:
    blocks = tuple(dataclasses.replace(b, compute_dtype=compute_dtype) for b in blocks)
  if isinstance(optimizers, optax.GradientTransformation):
    optimizers = (optimizers,) * len(blocks)
  optimizers = tuple(optimizers)
  if len(optimizers) != len(blocks):
    raise ValueError(f'got {len(optimizers)} optimizers for {len(blocks)} blocks; pass one per '
                     'block or a single one for all')
  if schedule.one_block_per_step:
    missing = [b.name for b in blocks if b.objective is None]
    if missing or not detach:
      raise ValueError(f'the {schedule.kind!r} schedule trains each block on its own objective '
                       f'with detach=True; blocks without one: {missing}')

  def init(rng, x):
    params, stats = init_blocks(blocks, rng, x)
    opt_state = tuple(tx.init(p) for tx, p in zip(optimizers, params))
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=stats,
                      opt_state=opt_state)

  def all_blocks_step(state: TrainState, batch: dict, rng: jax.Array):
    return update_blocks(blocks, optimizers, state, batch, rng, detach=detach,
                         in_order=in_order and detach)[:2]

  def block_step(i: int):
    """The train step of block ``i`` alone, the blocks below it run forward only."""
    def step(state: TrainState, batch: dict, rng: jax.Array):
      x = batch['image']
      for j in range(i):
        _, x, _ = apply_block(blocks[j], state.params[j]['forward'], state.batch_stats[j], x,
                           train=False, rng=rng)
      x = jax.lax.stop_gradient(x)

      def block_loss(p):
        h, _, stats = apply_block(blocks[i], p['forward'], state.batch_stats[i], x, train=True,
                               rng=jax.random.fold_in(rng, i))
        loss, _ = block_objective(blocks[i], p['aux'], h, batch)
        return loss, stats

      (loss, stats), grads = jax.value_and_grad(block_loss, has_aux=True)(state.params[i])
      params, opt_state = optimizer_step(optimizers[i], state.params[i], grads,
                                         state.opt_state[i])
      put = lambda tree, value: tree[:i] + (value,) + tree[i + 1:]
      new_state = state.replace(
          step=state.step + 1, params=put(state.params, params),
          batch_stats=put(state.batch_stats, stats), opt_state=put(state.opt_state, opt_state))
      return new_state, {'loss': loss, 'active_block': jnp.float32(i)}
    return step

  block_steps = tuple(block_step(i) for i in range(len(blocks)))

  def scheduled_loss(losses: jax.Array, step: jax.Array) -> jax.Array:
    """The evaluation counterpart of the train ``loss``: the sum over blocks when all learn;
    under a one-block schedule, whose train loss is the active block's, the mean over blocks
    for 'random' (its expectation) and otherwise the loss of the block that learned on the
    last step. Every block's own loss stays in ``<name>/loss``."""
    if not schedule.one_block_per_step:
      return jnp.sum(losses)
    if schedule.kind == 'random':
      return jnp.mean(losses)
    return losses[schedule.active_block(jnp.maximum(step - 1, 0), len(blocks))]

  def one_block_step(state: TrainState, batch: dict, rng: jax.Array):
    active = schedule.active_block(state.step, len(blocks))
    return jax.lax.switch(active, block_steps, state, batch, rng)

  def eval_step(state: TrainState, batch: dict):
    losses, metrics, _, _, _ = run_blocks(blocks, state.params, state.batch_stats, batch,
                                          train=False, rng=jax.random.key(0), detach=True)
    metrics['loss'] = scheduled_loss(jnp.stack(losses), state.step)
    if has_feedback(state.params):
      metrics.update(alignment_angles(blocks, state.params, state.batch_stats, batch,
                                      detach=detach))
    return metrics

  def stage_step(a: int, b: int):
    def step(state, x, batch, rng):
      state, metrics, out = update_blocks(blocks[a:b], optimizers[a:b], state,
                                          {**batch, 'image': x}, rng, in_order=in_order)
      if b < len(blocks):
        metrics.pop('accuracy', None)
      return state, out, metrics
    return step

  def features(state: TrainState, x: jax.Array) -> list:
    return _forward_features(blocks, state.params, state.batch_stats, x)

  names = tuple(b.name for b in blocks)
  if schedule.one_block_per_step:
    return Learner(init, one_block_step, eval_step, block_steps=block_steps, schedule=schedule,
                   block_names=names, features=features)
  return Learner(init, all_blocks_step, eval_step, block_names=names,
                 stage_step=stage_step if detach else None, features=features)


def param_count(tree: Any) -> int:
  """Number of scalars in a pytree of arrays."""
  return sum(x.size for x in jax.tree.leaves(tree))
