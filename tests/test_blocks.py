"""Tests for jaxlocal.blocks: gradient isolation, the one summed step, glob / glob+sim, BatchNorm
statistics, masked evaluation and the argument checks of make_learner.

The expected values come from networks composed here directly from the blocks' Flax forward
modules (``module.apply``), not from :func:`jaxlocal.blocks.run_blocks`.
"""

from __future__ import annotations

import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlocal import config_lib
from jaxlocal.blocks import Block, init_blocks, make_learner, run_blocks
from jaxlocal.methods import local_error as method
from jaxlocal.models.mlp import DenseBlock, OutputLayer
from jaxlocal.models.vgg import ConvBlock
from jaxlocal.objectives.base import LocalObjective

NUM_CLASSES = 10
IMAGE_SHAPE = (8, 8, 3)
BATCH = 8


def make_config(**overrides):
  c = config_lib.base_config()
  c.model = 'vgg:8,M,16'
  c.num_hidden = 32
  c.dim_in_decoder = 64
  c.dropout = 0.0
  for key, value in overrides.items():
    setattr(c, key, value)
  return c


VGG = {}
MLP = {'model': 'mlp', 'num_layers': 1}


def make_blocks(**overrides):
  return method.network_blocks(make_config(**overrides), num_classes=NUM_CLASSES,
                               image_shape=IMAGE_SHAPE)


def make_batch(seed=0, size=BATCH):
  rng = np.random.default_rng(seed)
  return {
      'image': jnp.asarray(rng.standard_normal((size, *IMAGE_SHAPE)).astype(np.float32)),
      'label': jnp.asarray(np.arange(size) % 4, jnp.int32),  # repeated classes
  }


def randomise_zero_leaves(params, seed=1, scale=0.1):
  """Replaces every all-zero leaf (zero-initialised heads, BN offsets) by random values, so that
  every gradient path is open."""
  leaves, treedef = jax.tree.flatten(params)
  rng = np.random.default_rng(seed)
  out = [jnp.asarray(scale * rng.standard_normal(leaf.shape).astype(np.float32))
         if not np.any(np.asarray(leaf)) else leaf for leaf in leaves]
  return jax.tree.unflatten(treedef, out)


def init(blocks, seed=0):
  params, stats = init_blocks(blocks, jax.random.key(seed), make_batch()['image'])
  return randomise_zero_leaves(params, seed + 1), stats


# ---- an independent composition of the network from the blocks' Flax modules -----------------


def apply_forward(block, fparams, stats, x, *, train, rng):
  """(h, out, new_stats) of one block, straight from its Flax module."""
  module = block.forward
  if isinstance(module, OutputLayer):
    logits = module.apply({'params': fparams}, x)
    return logits, logits, stats
  assert isinstance(module, (ConvBlock, DenseBlock))
  variables = {'params': fparams, **({'batch_stats': stats} if stats else {})}
  if train:
    rngs = {} if rng is None else {'dropout': rng}
    (h, out), mutated = module.apply(variables, x, train=True, rngs=rngs,
                                     mutable=['batch_stats'])
    return h, out, mutated.get('batch_stats', stats)
  h, out = module.apply(variables, x, train=False)
  return h, out, stats


def compose(blocks, params, stats, batch, *, detach, train=True, rng=None):
  """Per-block objective losses (0 without objective), new stats, logits."""
  rng = jax.random.key(0) if rng is None else rng
  x, losses, new_stats = batch['image'], [], []
  for i, block in enumerate(blocks):
    if detach:
      x = jax.lax.stop_gradient(x)
    h, x, st = apply_forward(block, params[i]['forward'], stats[i], x, train=train,
                             rng=jax.random.fold_in(rng, i))
    new_stats.append(st)
    losses.append(block.objective.loss(params[i]['aux'], h, batch)[0]
                  if block.objective is not None else jnp.zeros(()))
  return losses, tuple(new_stats), x


def plain_cross_entropy(logits, labels):
  logp = jax.nn.log_softmax(logits, axis=-1)
  return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))


def assert_trees_close(a, b, rtol=1e-6, atol=1e-7):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol,
                               err_msg=jax.tree_util.keystr(path))


def max_abs(tree):
  leaves = jax.tree.leaves(tree)
  return max((float(jnp.max(jnp.abs(x))) for x in leaves), default=0.0)


def loss_jacobian(blocks, params, stats, batch, *, detach, rng):
  """d loss_j / d params for every block loss j (leading axis j of every leaf)."""

  def losses(p):
    return jnp.stack(run_blocks(blocks, p, stats, batch, train=True, rng=rng, detach=detach)[0])

  return jax.jit(jax.jacrev(losses))(params)


def grad_of_loss(jac, j):
  return jax.tree.map(lambda leaf: leaf[j], jac)


# ----------------------------------------------------------------------------------------------
# Gradient isolation
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize('overrides', [
    dict(VGG, dropout=0.25),
    dict(VGG, loss='pred'),
    dict(MLP, num_layers=2, loss='sim', dropout=0.1),
], ids=['vgg-predsim-dropout', 'vgg-pred', 'mlp-sim-dropout'])
def test_gradient_isolation_between_blocks(overrides):
  blocks = make_blocks(**overrides)
  params, stats = init(blocks)
  batch = make_batch(1)
  jac = loss_jacobian(blocks, params, stats, batch, detach=True, rng=jax.random.key(3))
  for j, block in enumerate(blocks):
    grads = grad_of_loss(jac, j)
    for i in range(len(blocks)):
      for part in ('forward', 'aux'):
        leaves = jax.tree.leaves(grads[i][part])
        if i != j:
          assert all(np.all(np.asarray(g) == 0.0) for g in leaves), (
              f'loss of {block.name} leaks into {blocks[i].name}/{part}')
        elif leaves:
          assert max_abs(grads[i][part]) > 0.0, f'{block.name}/{part} gets no gradient'
  if overrides.get('model') == 'mlp':
    # Without the stop_gradient the output loss does reach the first block: the zeros above
    # are the detach's doing, not a dead path. (For the VGG see the glob+sim test.)
    jac = loss_jacobian(blocks, params, stats, batch, detach=False, rng=jax.random.key(3))
    assert max_abs(grad_of_loss(jac, len(blocks) - 1)[0]['forward']) > 0.0


# ----------------------------------------------------------------------------------------------
# One summed step = every block's own step
# ----------------------------------------------------------------------------------------------


def is_pre_batch_norm_bias(blocks, i, path):
  """The bias of the linear/conv layer that feeds a BatchNorm: its gradient is zero in exact
  arithmetic (BatchNorm subtracts the batch mean), so it is pure rounding noise, which Adam
  normalises to steps of up to ±lr."""
  keys = [getattr(k, 'key', None) for k in path]
  module = blocks[i].forward
  return (isinstance(module, (ConvBlock, DenseBlock)) and module.use_batch_norm
          and keys[0] == 'forward' and keys[-1] == 'bias' and 'bn' not in keys)


@pytest.mark.parametrize('overrides', [VGG, dict(MLP, batch_norm=False, num_layers=2)],
                         ids=['vgg-predsim', 'mlp-predsim-no-bn'])
def test_summed_step_equals_per_block_adam_steps(overrides):
  lr, steps = 1e-3, 2
  blocks = make_blocks(**overrides)
  tx = optax.adam(lr)
  learner = make_learner(blocks, tx)
  state = learner.init(jax.random.key(0), make_batch()['image'])
  state = state.replace(params=randomise_zero_leaves(state.params))
  train_step = jax.jit(learner.train_step)

  start = params = state.params
  stats = state.batch_stats
  opt_states = [tx.init(p) for p in params]

  def own_step(block):
    """grad of the block's own loss w.r.t. its own params, from the input x it is given."""

    def own_loss(p, x, block_stats, batch):
      h, out, st = apply_forward(block, p['forward'], block_stats, x, train=True, rng=None)
      return block.objective.loss(p['aux'], h, batch)[0], (out, st)

    return jax.jit(jax.value_and_grad(own_loss, has_aux=True))

  own_steps = [own_step(block) for block in blocks]
  for step in range(steps):
    batch = make_batch(10 + step)
    state, metrics = train_step(state, batch, jax.random.key(step))

    # Every block alone: its input from the blocks below, the grad of its own loss w.r.t. its
    # own params, its own Adam update.
    x, new_params, new_stats, total = batch['image'], [], [], 0.0
    for i in range(len(blocks)):
      (loss, (x, st)), g = own_steps[i](params[i], x, stats[i], batch)
      for path, leaf in jax.tree_util.tree_leaves_with_path(g):
        if is_pre_batch_norm_bias(blocks, i, path):
          assert float(jnp.max(jnp.abs(leaf))) < 1e-6
      updates, opt_states[i] = tx.update(g, opt_states[i], params[i])
      new_params.append(optax.apply_updates(params[i], updates))
      new_stats.append(st)
      total += float(loss)
    params, stats = tuple(new_params), tuple(new_stats)

    assert_trees_close(state.batch_stats, stats)
    np.testing.assert_allclose(float(metrics['loss']), total, rtol=1e-6)
  assert int(state.step) == steps

  checked = 0
  for i in range(len(blocks)):
    leaves = zip(jax.tree_util.tree_leaves_with_path(state.params[i]),
                 jax.tree.leaves(params[i]), jax.tree.leaves(start[i]))
    for (path, got), want, old in leaves:
      name = f'{blocks[i].name}{jax.tree_util.keystr(path)}'
      if is_pre_batch_norm_bias(blocks, i, path):
        # Noise-driven: only Adam's bound on the step size holds.
        assert np.all(np.abs(np.asarray(got) - np.asarray(old)) <= steps * lr * 1.001), name
        continue
      # Adam divides by sqrt(v): where a gradient is small, float32 rounding (which differs
      # between CPUs and thread counts) moves the step by ~1e-4 of lr; a wrong gradient moves
      # it by ~lr.
      np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-3 * lr,
                                 err_msg=name)
      assert np.any(np.asarray(got) != np.asarray(old)), name
      checked += 1
  assert checked >= 3 * len(blocks)


# ----------------------------------------------------------------------------------------------
# glob and glob+sim
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize('overrides', [VGG, dict(MLP, num_layers=2)], ids=['vgg', 'mlp'])
def test_glob_equals_plain_backprop_of_cross_entropy(overrides):
  lr = 0.1
  config = make_config(loss='glob', optimizer='sgd', learning_rate=lr, **overrides)
  dataset = types.SimpleNamespace(num_classes=NUM_CLASSES, image_shape=IMAGE_SHAPE)
  learner = method.build(config, dataset, steps_per_epoch=1)
  blocks = method.network_blocks(config, num_classes=NUM_CLASSES, image_shape=IMAGE_SHAPE)
  assert all(b.objective is None for b in blocks[:-1]) and blocks[-1].objective is not None

  state = learner.init(jax.random.key(0), make_batch()['image'])
  assert all(p['aux'] == {} for p in state.params)
  # glob keeps the default (non-zero) initialisation of the output layer.
  assert np.all(np.asarray(state.params[-1]['forward']['Dense_0']['linear']['kernel']) != 0)
  batch = make_batch(2)
  new_state, metrics = jax.jit(learner.train_step)(state, batch, jax.random.key(1))

  def net_loss(params):
    x, new_stats = batch['image'], []
    for i, block in enumerate(blocks):  # no stop_gradient anywhere
      _, x, st = apply_forward(block, params[i]['forward'], state.batch_stats[i], x, train=True,
                               rng=None)
      new_stats.append(st)
    return plain_cross_entropy(x, batch['label']), tuple(new_stats)

  (loss, stats), grads = jax.jit(jax.value_and_grad(net_loss, has_aux=True))(state.params)
  expected = jax.tree.map(lambda p, g: p - lr * g, state.params, grads)
  assert_trees_close(new_state.params, expected)
  assert_trees_close(new_state.batch_stats, stats)
  np.testing.assert_allclose(float(metrics['loss']), float(loss), rtol=1e-6)
  # Every hidden block moved: the output loss reached it through the whole network.
  for old, new in zip(state.params[:-1], new_state.params[:-1]):
    assert max_abs(jax.tree.map(jnp.subtract, old['forward'], new['forward'])) > 0

  if config.model == 'mlp':
    # The same blocks trained locally (detach=True): the hidden blocks have no objective, so
    # they receive no gradient at all.
    local = make_learner(blocks, optax.sgd(lr), detach=True)
    local_state, _ = jax.jit(local.train_step)(state, batch, jax.random.key(1))
    for old, new in zip(state.params[:-1], local_state.params[:-1]):
      assert_trees_close(old, new, rtol=0, atol=0)


def test_local_modes_zero_init_the_output_layer():
  for loss in ('pred', 'sim', 'predsim', 'glob+sim'):
    blocks = make_blocks(**MLP, loss=loss)
    params, _ = init_blocks(blocks, jax.random.key(0), make_batch()['image'])
    assert np.all(np.asarray(params[-1]['forward']['Dense_0']['linear']['kernel']) == 0), loss


def test_glob_sim_hidden_blocks_get_the_sim_gradients_of_blocks_above():
  lr = 0.05
  blocks = make_blocks(loss='glob+sim')
  assert [type(b.objective) for b in blocks] == [LocalObjective] * 4
  params, stats = init(blocks)
  batch = make_batch(3)
  rng = jax.random.key(4)
  jac = loss_jacobian(blocks, params, stats, batch, detach=False, rng=rng)
  hidden = range(len(blocks) - 1)
  for k in hidden:
    grads = grad_of_loss(jac, k)
    for i in range(len(blocks)):
      if i <= k:
        assert max_abs(grads[i]['forward']) > 0.0, (k, i)
      else:
        assert max_abs(grads[i]) == 0.0, (k, i)
      if i != k:  # the sim projection of block i only serves block i's loss
        assert max_abs(grads[i]['aux']) == 0.0, (k, i)

  # One SGD step equals the step along the gradient of the summed objectives of a network
  # composed without any stop_gradient.
  learner = make_learner(blocks, optax.sgd(lr), detach=False)
  state = learner.init(jax.random.key(0), batch['image'])
  state = state.replace(params=params)
  new_state, _ = jax.jit(learner.train_step)(state, batch, rng)

  def total(p):
    losses, new_stats, _ = compose(blocks, p, stats, batch, detach=False, rng=rng)
    return sum(losses), new_stats

  (_, new_stats), grads = jax.jit(jax.value_and_grad(total, has_aux=True))(params)
  assert_trees_close(new_state.params, jax.tree.map(lambda p, g: p - lr * g, params, grads))
  assert_trees_close(new_state.batch_stats, new_stats)


# ----------------------------------------------------------------------------------------------
# BatchNorm statistics and evaluation
# ----------------------------------------------------------------------------------------------


def test_optimizer_step_overwrites_a_parameter_after_its_last_read():
  """A parameter read only for another leaf's gradient (w, for v's: dw needs no w) is updated in
  place, not copied: XLA:CPU made such copies at the start of a step and held them to its end
  (the sim heads' kernels, 31 MiB in a VGG8B predsim step)."""
  from jaxlocal.blocks import optimizer_step
  tx = optax.adam(1e-3)
  params = {'w': jnp.zeros((256, 256)), 'v': jnp.zeros((256,))}

  def step(params, opt_state, x):
    grads = jax.grad(lambda p: jnp.sum(jnp.tanh((x * p['v']) @ p['w'])))(params)
    return optimizer_step(tx, params, grads, opt_state)

  compiled = jax.jit(step, donate_argnums=(0, 1)).lower(
      params, tx.init(params), jnp.zeros((16, 256))).compile()
  assert ' copy(' not in compiled.as_text()


def test_optimizer_step_takes_a_state_holding_a_key():
  """The ties of optimizer_step (jaxlocal.ordering.after) pass keys and booleans through: an
  optimiser state may hold a PRNG key; numbers keep their bits (-0.0 included)."""
  from jaxlocal.blocks import optimizer_step
  from jaxlocal.ordering import after

  def init(params):
    return {'key': jax.random.key(0), 'seen': jnp.zeros((), bool)}

  def update(grads, state, params=None):
    noise = jax.random.normal(state['key'], grads['w'].shape)
    return {'w': -0.1 * grads['w'] + 0.0 * noise}, {'key': jax.random.split(state['key'])[0],
                                                    'seen': jnp.ones((), bool)}

  tx = optax.GradientTransformation(init, update)
  params = {'w': jnp.arange(3.0)}
  new, state = jax.jit(lambda p, s: optimizer_step(tx, p, {'w': jnp.ones(3)}, s))(
      params, tx.init(params))
  np.testing.assert_allclose(new['w'], jnp.arange(3.0) - 0.1)
  assert bool(state['seen']) and jax.dtypes.issubdtype(state['key'].dtype, jax.dtypes.prng_key)
  tied = after({'x': jnp.array([-0.0, 1.5]), 'n': jnp.int32(7)}, {'k': jax.random.key(1)})
  assert np.signbit(tied['x'][0]) and tied['x'][1] == 1.5 and tied['n'] == 7


def test_train_step_updates_batch_norm_statistics():
  blocks = make_blocks(**MLP)
  learner = make_learner(blocks, optax.adam(1e-3))
  batch = make_batch(5)
  state = learner.init(jax.random.key(0), batch['image'])
  stats0 = state.batch_stats[0]['bn']
  np.testing.assert_array_equal(np.asarray(stats0['mean']), 0.0)
  np.testing.assert_array_equal(np.asarray(stats0['var']), 1.0)

  new_state, _ = jax.jit(learner.train_step)(state, batch, jax.random.key(1))
  # fc1's pre-BatchNorm activations in NumPy, and the running averages (momentum 0.9 in Flax's
  # convention, PyTorch's 0.1).
  lin = state.params[0]['forward']['Dense_0']['linear']
  x = np.asarray(batch['image'], np.float64).reshape(BATCH, -1)
  pre = x @ np.asarray(lin['kernel'], np.float64) + np.asarray(lin['bias'], np.float64)
  got = new_state.batch_stats[0]['bn']
  np.testing.assert_allclose(np.asarray(got['mean']), 0.1 * pre.mean(0), atol=1e-6)
  # Flax's BatchNorm averages the biased batch variance.
  np.testing.assert_allclose(np.asarray(got['var']), 0.9 + 0.1 * pre.var(0), rtol=1e-5)
  assert new_state.batch_stats[1] == {}


@pytest.fixture(scope='module')
def trained_vgg():
  """A VGG learner after three Adam steps (non-trivial running statistics and predictions)."""
  blocks = make_blocks(**VGG)
  learner = make_learner(blocks, optax.adam(1e-2))
  state = learner.init(jax.random.key(0), make_batch()['image'])
  train_step = jax.jit(learner.train_step)
  for step in range(3):
    state, _ = train_step(state, make_batch(20 + step), jax.random.key(step))
  return blocks, learner._replace(eval_step=jax.jit(learner.eval_step)), state


def test_eval_step_uses_running_statistics_and_changes_nothing(trained_vgg):
  blocks, learner, state = trained_vgg
  before = jax.tree.map(np.asarray, state.batch_stats)
  batch = make_batch(30)
  metrics = learner.eval_step(state, batch)
  again = learner.eval_step(state, batch)
  assert_trees_close(jax.tree.map(np.asarray, state.batch_stats), before, rtol=0, atol=0)
  assert_trees_close(metrics, again, rtol=0, atol=0)

  # The same numbers from the network composed with running averages (train=False).
  evaluate = jax.jit(lambda batch: compose(blocks, state.params, state.batch_stats, batch,
                                           detach=True, train=False))
  losses, stats, logits = evaluate(batch)
  assert_trees_close(stats, before, rtol=0, atol=0)
  labels = batch['label']
  np.testing.assert_allclose(float(metrics['output/xent']),
                             float(plain_cross_entropy(logits, labels)), rtol=1e-5)
  np.testing.assert_allclose(float(metrics['accuracy']),
                             float(jnp.mean(jnp.argmax(logits, -1) == labels)), atol=1e-7)
  np.testing.assert_allclose(float(metrics['loss']), float(sum(losses)), rtol=1e-5)
  # Each example's prediction is its own: evaluating half the batch gives the same logits.
  _, _, half = evaluate(jax.tree.map(lambda a: a[:BATCH // 2], batch))
  np.testing.assert_allclose(np.asarray(half), np.asarray(logits)[:BATCH // 2], atol=1e-5)


def test_eval_step_metrics_respect_the_mask(trained_vgg):
  _, learner, state = trained_vgg
  batch = make_batch(50)
  rng = np.random.default_rng(51)
  garbage = 50.0 * rng.standard_normal((5, *IMAGE_SHAPE)).astype(np.float32)
  padded = {
      'image': jnp.concatenate([batch['image'], jnp.asarray(garbage)]),
      'label': jnp.concatenate([batch['label'], jnp.asarray([9, 9, 8, 8, 7], jnp.int32)]),
      'mask': jnp.asarray([1.0] * BATCH + [0.0] * 5),
  }
  eval_step = learner.eval_step
  clean = eval_step(state, batch)
  masked = eval_step(state, padded)
  ones = eval_step(state, dict(batch, mask=jnp.ones(BATCH)))
  assert set(clean) == set(masked) == set(ones)
  assert {'accuracy', 'loss', 'output/xent', 'conv1/sim_loss', 'fc1/pred_loss'} <= set(clean)
  assert_trees_close(masked, clean, rtol=1e-5, atol=1e-6)
  assert_trees_close(ones, clean, rtol=1e-5, atol=1e-6)
  # Without the mask the garbage does change the numbers.
  unmasked = eval_step(state, {k: v for k, v in padded.items() if k != 'mask'})
  for key in ('loss', 'conv1/sim_loss', 'output/xent'):
    assert abs(float(unmasked[key]) - float(clean[key])) > 1e-3, key


# ----------------------------------------------------------------------------------------------
# make_learner's argument checks
# ----------------------------------------------------------------------------------------------


def test_make_learner_rejects_wrong_number_of_optimizers():
  blocks = make_blocks(**MLP)
  with pytest.raises(ValueError, match='3 optimizers for 2 blocks'):
    make_learner(blocks, [optax.sgd(0.1)] * 3)
  with pytest.raises(ValueError, match='1 optimizers for 2 blocks'):
    make_learner(blocks, [optax.sgd(0.1)])
  make_learner(blocks, [optax.sgd(0.1), optax.adam(0.1)])  # one per block is fine


def test_make_learner_rejects_non_blocks():
  blocks = make_blocks(**MLP)
  with pytest.raises(TypeError, match='block 1 is DenseBlock'):
    make_learner([blocks[0], blocks[0].forward], optax.sgd(0.1))
  with pytest.raises(TypeError, match='block 0 is tuple'):
    make_learner([(blocks[0].forward, None)], optax.sgd(0.1))
  with pytest.raises(TypeError, match='local objective'):
    make_learner([Block(nn.Dense(3), objective=3)], optax.sgd(0.1))
  with pytest.raises(ValueError, match='at least one block'):
    make_learner([], optax.sgd(0.1))


def test_make_learner_rejects_duplicate_names():
  blocks = make_blocks(**MLP)
  with pytest.raises(ValueError, match='unique'):
    make_learner([Block(b.forward, b.objective, name='same') for b in blocks], optax.sgd(0.1))
  # A name given explicitly may not collide with a default one either.
  with pytest.raises(ValueError, match='unique'):
    make_learner([Block(blocks[0].forward), Block(blocks[1].forward, name='block0')],
                 optax.sgd(0.1))
  make_learner([Block(blocks[0].forward), Block(blocks[1].forward)], optax.sgd(0.1))
