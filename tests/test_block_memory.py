"""The block-ordered local step (jaxlocal.blocks.update_blocks_in_order): the same update as the
summed step, in a fraction of global backprop's temporary memory; and the batch search of
benchmarks/max_batch.py."""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import REPO
from jaxlocal import config_lib
from jaxlocal.blocks import make_learner, update_blocks
from jaxlocal.methods import local_error as method

sys.path.insert(0, str(REPO / 'benchmarks'))
from max_batch import largest_batch  # noqa: E402  (benchmarks/ is not a package)


def network(image_shape, **fields):
  c = config_lib.base_config()
  c.num_hidden, c.dim_in_decoder = 32, 64
  c.update(fields)
  return method.network_blocks(c, num_classes=10, image_shape=image_shape)


def batch_of(image_shape, size=8, seed=0):
  k1, k2 = jax.random.split(jax.random.key(seed))
  return {'image': jax.random.normal(k1, (size, *image_shape)),
          'label': jax.random.randint(k2, (size,), 0, 10)}


@pytest.mark.parametrize('fields, dtype', [
    (dict(model='vgg:8,M,16', loss='predsim', dropout=0.25), None),
    (dict(model='mlp', num_layers=2, loss='sim', batch_norm=False), None),
    (dict(model='vgg:8,M,16', loss='pred', freeze_hidden=True), None),  # a block without loss
    (dict(model='vgg:8,M,16', loss='pred', bpf=True), jnp.bfloat16),  # the pooled output tied
], ids=['vgg-predsim-dropout', 'mlp-sim', 'vgg-frozen', 'vgg-bpf-bfloat16'])
def test_in_order_step_equals_the_summed_step(fields, dtype):
  """Same parameters, optimiser states, BatchNorm statistics and metrics after two steps: block
  i+1 reads block i's output from before block i's update, with the same dropout keys."""
  image_shape = (8, 8, 3)
  blocks = network(image_shape, **fields)
  tx = optax.sgd(0.05, momentum=0.9)
  summed = make_learner(blocks, tx, in_order=False, compute_dtype=dtype)
  ordered = make_learner(blocks, tx, in_order=True, compute_dtype=dtype)
  state = summed.init(jax.random.key(0), batch_of(image_shape)['image'])
  states = {}
  for name, learner in (('summed', summed), ('ordered', ordered)):
    s, step = state, jax.jit(learner.train_step)
    for k in range(2):
      s, metrics = step(s, batch_of(image_shape, seed=k + 1), jax.random.key(k))
    states[name] = (s, metrics)
  (a, metrics_a), (b, metrics_b) = states['summed'], states['ordered']
  assert int(b.step) == 2 and metrics_a.keys() == metrics_b.keys()
  for x, y in zip(jax.tree.leaves((a.params, a.opt_state, a.batch_stats, metrics_a)),
                  jax.tree.leaves((b.params, b.opt_state, b.batch_stats, metrics_b))):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
  moved = [any(not np.allclose(n, o) for n, o in zip(jax.tree.leaves(new['forward']),
                                                      jax.tree.leaves(old['forward'])))
           for new, old in zip(b.params, state.params)]
  assert moved[-1] and (fields.get('freeze_hidden') or all(moved))


def test_in_order_refuses_global_backprop():
  blocks = network((8, 8, 3), model='vgg:8,M', loss='glob')
  learner = make_learner(blocks, optax.sgd(0.1), detach=False, in_order=True)  # glob: summed
  batch = batch_of((8, 8, 3))
  state = learner.init(jax.random.key(0), batch['image'])
  learner.train_step(state, batch, jax.random.key(1))
  with pytest.raises(ValueError, match='detach=False'):
    update_blocks(blocks, (optax.sgd(0.1),) * len(blocks), state, batch, jax.random.key(1),
                  detach=False, in_order=True)


def temp_bytes(loss: str, in_order: bool, image_shape=(8, 8, 3), batch_size=16) -> int:
  """Compiled temporary memory of the train step of four identical 16-channel conv blocks."""
  blocks = network(image_shape, model='vgg:16,16,16,16', loss=loss)
  learner = make_learner(blocks, optax.sgd(0.1), detach=loss != 'glob', in_order=in_order)
  x = jax.ShapeDtypeStruct((batch_size, *image_shape), jnp.float32)
  batch = {'image': x, 'label': jax.ShapeDtypeStruct((batch_size,), jnp.int32)}
  state = jax.eval_shape(learner.init, jax.random.key(0), x)
  compiled = jax.jit(learner.train_step, donate_argnums=0).lower(
      state, batch, jax.random.key(0)).compile()
  return compiled.memory_analysis().temp_size_in_bytes


def test_in_order_step_holds_a_fraction_of_global_backprops_temporary_memory():
  """Each block's activations die before the next block runs: on four equal blocks, pred holds
  about one block's (0.51x glob, 0.55x the summed local step, which schedules every forward
  first, on XLA:CPU, jax 0.10.2, 2026-12-07), predsim one block's and its sim head's (0.79x
  glob, 0.48x summed). Until 2026-12-06 glob's step held 1.29x what it holds now (BatchNorm
  took the conv's bias), and these ratios were 0.40x and 0.71x for the same local steps'
  memory; on 2026-12-06, 0.53x and 0.84x (the pred pool and BatchNorm's gradient sums stored
  their operands)."""
  glob = temp_bytes('glob', in_order=False)
  local = {loss: temp_bytes(loss, in_order=True) for loss in ('pred', 'predsim')}
  ratios = {loss: local[loss] / glob for loss in local}
  assert ratios['pred'] <= 0.54 and ratios['predsim'] <= 0.83, ratios
  summed = {loss: local[loss] / temp_bytes(loss, in_order=False) for loss in local}
  assert summed['pred'] <= 0.6 and summed['predsim'] <= 0.6, summed


def test_largest_batch_finds_the_boundary_of_a_monotone_size():
  calls = []

  def size(batch):  # bytes: an affine cost with a step, like padding to a tile
    calls.append(batch)
    return 1000 + 37 * batch + (50 if batch > 300 else 0)

  assert largest_batch(size, budget=1000 + 37 * 300 + 49, start=16) == 300
  assert len(calls) <= 14
  assert largest_batch(size, budget=1000 + 37 * 5, start=16) == 5
  assert largest_batch(size, budget=1000 + 36, start=16) == 0   # not even one example fits
  assert largest_batch(size, budget=10**9, start=16, limit=4096) == 4096


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_batch_norm_equals_flax(dtype):
  """jaxlocal's BatchNorm (its gradient written by hand, for memory) has Flax's variables and
  gives its outputs and statistics bitwise and its gradients to float rounding, also with a
  constant channel (variance clipped at 0) and in bfloat16. The constant channel's scale
  gradient, 0 by Flax's, is the rounding of Σ dy·x − mean·Σ dy there (the scale does not change
  that channel's output): bounded by a few float32 ulps of mean·Σ|dy|, times rsqrt(ε)."""
  import flax.linen as nn
  from jaxlocal.models.layers import BatchNorm
  for shape in [(16, 5, 5, 7), (32, 9)]:
    x = (3 * jax.random.normal(jax.random.key(0), shape) + 1).at[..., 0].set(2.0).astype(dtype)
    w = jax.random.normal(jax.random.key(3), shape)
    ours, flax_bn = BatchNorm(momentum=0.9), nn.BatchNorm(momentum=0.9, epsilon=1e-5)
    variables = flax_bn.init(jax.random.key(1), x, use_running_average=False)
    assert jax.tree.map(jnp.shape, ours.init(jax.random.key(1), x)) == jax.tree.map(
        jnp.shape, variables)
    params = jax.tree.map(lambda a: a + 0.3 * jax.random.normal(jax.random.key(2), a.shape),
                          variables['params'])

    def loss(module, p, x, **kwargs):
      y, stats = module.apply({'params': p, 'batch_stats': variables['batch_stats']}, x,
                              mutable=['batch_stats'], **kwargs)
      return jnp.sum(y.astype(jnp.float32) * w), (y, stats)

    grad = lambda f: jax.jit(jax.value_and_grad(f, (0, 1), has_aux=True))(params, x)
    (_, want), want_grads = grad(lambda p, x: loss(flax_bn, p, x, use_running_average=False))
    (_, got), got_grads = grad(lambda p, x: loss(ours, p, x))
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
      assert a.dtype == b.dtype
      np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))
    constant_scale = float(got_grads[0]['scale'][0])
    dy = np.abs(np.asarray(w).reshape(-1, shape[-1])[:, 0]).sum()
    assert abs(constant_scale) <= 4 * np.finfo(np.float32).eps * 2.0 * dy / np.sqrt(1e-5)
    got_grads = ({**got_grads[0], 'scale': got_grads[0]['scale'].at[0].set(0.0)}, got_grads[1])
    for a, b in zip(jax.tree.leaves(want_grads), jax.tree.leaves(got_grads)):
      assert a.dtype == b.dtype
      a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
      tol = 1e-5 if dtype == jnp.float32 else 1e-2
      np.testing.assert_allclose(b, a, rtol=tol, atol=tol * np.abs(a).max())
    evaluate = lambda m, **kw: m.apply({'params': params, **got[1]}, x, **kw)
    np.testing.assert_array_equal(
        np.asarray(evaluate(BatchNorm(use_running_average=True)), np.float32),
        np.asarray(evaluate(nn.BatchNorm(), use_running_average=True), np.float32))


def test_max_pool_gradient_equals_the_reduce_max_gradient_and_takes_the_first_tie():
  """max_pool_2x2's hand-written gradient (it keeps only x) is JAX's derivative of the reshape
  and max it replaces, bitwise, where no window has a tie (odd sizes cropped); on a tie the
  whole gradient goes to the window's first maximum, row-major, as in PyTorch."""
  from jaxlocal.models.layers import max_pool_2x2

  def reduce_max_pool(x):
    b, h, w, c = x.shape
    x = x[:, :h // 2 * 2, :w // 2 * 2]
    return jnp.max(x.reshape(b, h // 2, 2, w // 2, 2, c), axis=(2, 4))

  x = jax.random.normal(jax.random.key(0), (3, 7, 9, 5))
  w = jax.random.normal(jax.random.key(1), (3, 3, 4, 5))
  loss = lambda pool: jax.jit(jax.value_and_grad(lambda x: jnp.sum(pool(x) * w)))(x)
  (want, want_grad), (got, got_grad) = loss(reduce_max_pool), loss(max_pool_2x2)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  np.testing.assert_array_equal(np.asarray(got_grad), np.asarray(want_grad))
  tied = jnp.array([[1., 3.], [3., 0.]])[None, :, :, None]
  np.testing.assert_array_equal(
      np.asarray(jax.grad(lambda x: 2 * max_pool_2x2(x).sum())(tied)).ravel(), [0, 2, 0, 0])


def test_conv_block_drops_after_pooling_the_same_values():
  """ConvBlock pools before its channel dropout: h and out are bitwise those of dropout then
  pooling (the reference's order), as the channel mask does not depend on the spatial size and a
  positive factor commutes with the max; the gradients w.r.t. the parameters and the input agree
  to float rounding (XLA fuses the two differently; the conv bias's gradient, 0 before BatchNorm
  but for rounding, is all rounding)."""
  import flax.linen as nn
  from jaxlocal.models.layers import Conv, batch_norm, max_pool_2x2, nonlinearity
  from jaxlocal.models.vgg import ConvBlock

  class DropThenPool(ConvBlock):
    @nn.compact
    def __call__(self, x, train: bool = False):
      x = Conv(self.features, self.kernel_size, self.stride, self.padding, bias_apart=True)(x)
      h = nonlinearity(self.nonlin)(batch_norm(train)(*x))
      out = nn.Dropout(self.dropout, broadcast_dims=(1, 2), deterministic=not train)(h)
      return h, max_pool_2x2(out)

  x = jax.random.normal(jax.random.key(0), (4, 6, 6, 3))
  for nonlin in ('relu', 'leakyrelu'):
    fields = dict(features=8, nonlin=nonlin, dropout=0.4, pool=True)
    variables = ConvBlock(**fields).init(jax.random.key(1), x)
    w = jax.random.normal(jax.random.key(2), (4, 3, 3, 8))

    def loss(module, params, x):
      (h, out), _ = module.apply({**variables, 'params': params}, x, train=True,
                                 rngs={'dropout': jax.random.key(3)}, mutable=['batch_stats'])
      return jnp.sum(out * w) + jnp.sum(h ** 2), (h, out)

    results = [jax.jit(jax.value_and_grad(lambda p, x, m=m: loss(m, p, x), (0, 1),
                                          has_aux=True))(variables['params'], x)
               for m in (DropThenPool(**fields), ConvBlock(**fields))]
    (_, want), want_grads = results[0]
    (_, got), got_grads = results[1]
    assert 0 < np.mean(np.asarray(got[1]) == 0) < 1  # some channels dropped, not all
    for a, b in zip(want, got):
      np.testing.assert_array_equal(np.asarray(b), np.asarray(a))
    scale = max(float(jnp.abs(g).max()) for g in jax.tree.leaves(want_grads))
    for a, b in zip(jax.tree.leaves(want_grads), jax.tree.leaves(got_grads)):
      np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6 * scale)


def test_conv_block_hands_its_bias_to_batch_norm():
  """ConvBlock's conv leaves its bias to BatchNorm (``Conv(bias_apart=True)``): the parameters
  (tree and initial values) and batch statistics are those of conv + bias then BatchNorm, train
  mode's outputs and gradients agree to float rounding, eval mode's outputs bitwise."""
  import flax.linen as nn
  from jaxlocal.models.layers import Conv, batch_norm, nonlinearity
  from jaxlocal.models.vgg import ConvBlock

  class BiasThenNorm(ConvBlock):
    @nn.compact
    def __call__(self, x, train: bool = False):
      x = Conv(self.features, self.kernel_size, self.stride, self.padding)(x)
      return nonlinearity(self.nonlin)(batch_norm(train)(x)), None

  x = jax.random.normal(jax.random.key(0), (6, 5, 5, 3)) + 0.5
  ours, plain = ConvBlock(features=4), BiasThenNorm(features=4)
  variables, own = plain.init(jax.random.key(1), x), ours.init(jax.random.key(1), x)
  assert jax.tree.structure(own) == jax.tree.structure(variables)
  for a, b in zip(jax.tree.leaves(own), jax.tree.leaves(variables)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  params = jax.tree.map(lambda a: a + 0.3 * jax.random.normal(jax.random.key(2), a.shape),
                        variables['params'])
  w = jax.random.normal(jax.random.key(3), (6, 5, 5, 4))

  def loss(module, p):
    (h, _), stats = module.apply({**variables, 'params': p}, x, train=True,
                                 mutable=['batch_stats'])
    return jnp.sum(h * w), (h, stats)

  (_, (h_want, stats_want)), g_want = jax.value_and_grad(
      lambda p: loss(plain, p), has_aux=True)(params)
  (_, (h_got, stats_got)), g_got = jax.value_and_grad(lambda p: loss(ours, p), has_aux=True)(params)
  np.testing.assert_allclose(h_got, h_want, rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.tree.leaves(stats_want), jax.tree.leaves(stats_got)):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
  scale = max(float(jnp.abs(g).max()) for g in jax.tree.leaves(g_want))
  for a, b in zip(jax.tree.leaves(g_want), jax.tree.leaves(g_got)):  # the conv bias's: ~0 both
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * scale)
  evaluate = lambda m: m.apply({'params': params, **stats_got}, x)[0]
  np.testing.assert_array_equal(np.asarray(evaluate(ours)), np.asarray(evaluate(plain)))
