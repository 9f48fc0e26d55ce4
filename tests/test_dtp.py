"""Difference target propagation: the layers, the target rule and the jitted step."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlocal.models.dtp import DTPForward, DTPInverse
from jaxlocal.models.heads import EmbeddingHead
from jaxlocal.objectives.base import accuracy, cross_entropy
from jaxlocal.rules import dtp

CHANNELS = (3, 4)             # 8×8×2 -> 4×4×3 -> 2×2×4


def supervised(z, batch):
  xent = cross_entropy(z, batch)
  return xent, {'xent': xent, 'accuracy': accuracy(z, batch)}


def forward_layers(downsample='pool'):
  return [DTPForward(c, downsample) for c in CHANNELS]


def learner(downsample='pool', *, forward=None, inverse=None, top=None, target_step=0.5,
            noise_std=0.3):
  sgd = optax.sgd(0.1)
  return dtp.make_dtp_learner(
      forward_layers(downsample), [DTPInverse(c) for c in CHANNELS[:-1]],
      EmbeddingHead(3), supervised, forward_optimizer=forward or sgd,
      inverse_optimizer=inverse or sgd, top_optimizer=top or sgd, target_step=target_step,
      noise_std=noise_std)


def toy_batch(seed=0, size=4):
  """Images (size, 8, 8, 2): a template per class (3 classes) plus noise."""
  rng = np.random.default_rng(seed)
  templates = rng.normal(size=(3, 8, 8, 2))
  label = np.arange(size) % 3
  image = templates[label] + 0.5 * rng.normal(size=(size, 8, 8, 2))
  return {'image': jnp.asarray(image, jnp.float32), 'label': jnp.asarray(label, jnp.int32)}


def leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def assert_same(a, b):
  for x, y in zip(leaves(a), leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


def assert_all_changed(a, b):
  assert leaves(a)
  for x, y in zip(leaves(a), leaves(b), strict=True):
    assert np.any(x != y)


@pytest.mark.parametrize('downsample', ['pool', 'stride'])
def test_inverse_doubles_the_size_back_to_the_previous_channels(downsample):
  def shape(module, x):
    return jax.eval_shape(lambda x: module.apply(module.init(jax.random.key(0), x), x), x).shape

  x = jnp.ones((2, 8, 8, 3))
  assert shape(DTPForward(5, downsample), x) == (2, 4, 4, 5)
  assert shape(DTPInverse(3), jnp.ones((2, 4, 4, 5))) == x.shape
  assert shape(DTPInverse(3), jnp.ones((1, 3, 5, 5))) == (1, 6, 10, 3)


def test_inverse_is_pytorch_conv_transpose_with_a_flipped_kernel():
  """y[2i − 1 + a, 2j − 1 + b] += x[i, j] · W[a, b] inside the 2H × 2W output (k=3, s=2, p=1,
  output_padding=1), then tanh; W is the Flax kernel flipped in space."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=(1, 3, 3, 2)).astype(np.float32)
  g = DTPInverse(3)
  params = g.init(jax.random.key(0), x)
  kernel = np.asarray(params['params']['deconv']['kernel'])[::-1, ::-1]
  y = np.zeros((1, 6, 6, 3), np.float32)
  for i in range(3):
    for j in range(3):
      for a in range(3):
        for b in range(3):
          oy, ox = 2 * i - 1 + a, 2 * j - 1 + b
          if 0 <= oy < 6 and 0 <= ox < 6:
            y[:, oy, ox] += x[:, i, j] @ kernel[a, b]
  y = np.tanh(y + np.asarray(params['params']['deconv']['bias']))
  np.testing.assert_allclose(g.apply(params, x), y, atol=1e-6)


def test_inverse_is_flax_conv_transpose_with_the_same_parameters_and_gradients():
  """DTPInverse writes nn.ConvTranspose as nn.Conv(input_dilation=2) to use the conv op's
  kernel gradient: the parameter tree, values and gradients are ConvTranspose's."""
  x = jax.random.normal(jax.random.key(0), (2, 4, 4, 5))
  g = DTPInverse(3)
  params = g.init(jax.random.key(1), x)
  plain = nn.ConvTranspose(3, (3, 3), strides=(2, 2), padding=((1, 2), (1, 2)))
  assert jax.tree.map(jnp.shape, params) == {
      'params': {'deconv': {'kernel': (3, 3, 5, 3), 'bias': (3,)}}}
  plain_apply = lambda p, x: jnp.tanh(plain.apply({'params': p['params']['deconv']}, x))
  np.testing.assert_allclose(g.apply(params, x), plain_apply(params, x), rtol=1e-5, atol=1e-6)
  loss = lambda apply: lambda p: jnp.sum(jnp.sin(apply(p, x)))
  got, want = jax.grad(loss(g.apply))(params), jax.grad(loss(plain_apply))(params)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def dense_net(act, inverse_act, depth, seed=0, width=4, batch=3):
  """h_l = act(h_{l−1} W_l), g_l(h) = inverse_act(h) W_l^{-1}: exact inverses. Returns hs,
  the inverse_apply callable, [W_2^{-1} …], and h_L as a function of h_1 (one example)."""
  rng = np.random.default_rng(seed)
  Ws = [np.eye(width) + 0.4 * rng.normal(size=(width, width)) for _ in range(depth)]
  h = 0.5 * rng.normal(size=(batch, width))
  hs = []
  for W in Ws:
    h = act(h @ W)
    hs.append(jnp.asarray(h))

  def inverse_apply(l, W_inv, h):
    del l
    return inverse_act(h) @ W_inv

  def top_of_first(h1):
    for W in Ws[1:]:
      h1 = act(h1 @ W)
    return h1

  inverses = [jnp.asarray(np.linalg.inv(W)) for W in Ws[1:]]
  return hs, inverse_apply, inverses, top_of_first


def test_difference_correction_cancels_for_exact_inverses():
  with jax.enable_x64(True):
    hs, inverse_apply, inverses, _ = dense_net(jnp.tanh, jnp.arctanh, depth=3)
    top_target = jnp.tanh(jnp.asarray(np.random.default_rng(1).normal(size=hs[-1].shape)))
    hats = dtp.targets(inverse_apply, inverses, hs, top_target)
    assert len(hats) == 3
    np.testing.assert_array_equal(hats[-1], top_target)
    for l in (3, 2):
      np.testing.assert_allclose(hats[l - 2], inverse_apply(l, inverses[l - 2], hats[l - 1]),
                                 rtol=1e-10, atol=1e-12)


def test_targets_carry_no_gradient():
  hs, inverse_apply, inverses, _ = dense_net(jnp.tanh, jnp.arctanh, depth=3)

  def total(hs, inverses, top_target):
    return sum(jnp.sum(h**2) for h in dtp.targets(inverse_apply, inverses, hs, top_target))

  grads = jax.grad(total, argnums=(0, 1, 2))(hs, inverses, 0.9 * hs[-1])
  for g in jax.tree.leaves(grads):
    np.testing.assert_array_equal(g, 0.0)


@pytest.mark.parametrize('act, inverse_act, depth, eta, rtol', [
    (lambda x: x, lambda x: x, 2, 0.1, 1e-10),        # linear: the target is exact
    (jnp.tanh, jnp.arctanh, 3, 1e-4, 1e-3),           # nonlinear: first order in η_t
])
def test_target_is_the_gauss_newton_step_not_the_gradient(act, inverse_act, depth, eta, rtol):
  """ĥ_1 − h_1 ≈ −η_t J⁻¹ ∇_{h_L}ℒ, J = ∂h_L/∂h_1 (Meulemans et al. §3), unlike −η_t Jᵀ ∇ℒ."""
  with jax.enable_x64(True):
    hs, inverse_apply, inverses, top_of_first = dense_net(act, inverse_act, depth)
    y = jnp.asarray(np.random.default_rng(2).uniform(-0.5, 0.5, size=hs[-1].shape))
    grad = jax.grad(lambda h: 0.5 * jnp.sum((h - y)**2))(hs[-1])
    hats = dtp.targets(inverse_apply, inverses, hs, hs[-1] - eta * grad)
    for b in range(hs[0].shape[0]):
      J = jax.jacfwd(top_of_first)(hs[0][b])               # J[i, j] = ∂h_L,i / ∂h_1,j
      expected = -eta * np.linalg.solve(J, grad[b])
      step = np.asarray(hats[0][b] - hs[0][b])
      np.testing.assert_allclose(step, expected, rtol=rtol, atol=rtol * np.abs(expected).max())
      backprop = -eta * J.T @ grad[b]
      cosine = step @ backprop / (np.linalg.norm(step) * np.linalg.norm(backprop))
      assert cosine < 0.99


def test_zero_target_step_leaves_every_forward_layer_bitwise_unchanged():
  learn, batch = learner(target_step=0.0), toy_batch()
  state = learn.init(jax.random.key(0), batch['image'])
  new_state, metrics = jax.jit(learn.train_step)(state, batch, jax.random.key(1))
  before, after = state.params, new_state.params
  for l, (old, new) in enumerate(zip(before['layers'], after['layers']), 1):
    assert float(metrics[f'layer{l}/target_distance']) == 0.0
    assert_same(old['forward'], new['forward'])
    if l >= 2:
      assert_all_changed(old['inverse'], new['inverse'])
      assert float(metrics[f'layer{l}/reconstruction']) > 0
  assert after['layers'][0]['inverse'] == {}
  assert_all_changed(before['top'], after['top'])
  assert np.isfinite(float(metrics['loss']))


def with_learning_rates(state, forward, inverse):
  """state with every layer's injected forward and inverse learning rates replaced."""
  def set_lr(opt_state, lr):
    return opt_state._replace(hyperparams={'learning_rate': jnp.asarray(lr, jnp.float32)})

  layers = tuple({'forward': set_lr(s['forward'], forward),
                  'inverse': set_lr(s['inverse'], inverse)} for s in state.opt_state['layers'])
  return state.replace(opt_state={**state.opt_state, 'layers': layers})


def test_forward_and_inverse_updates_are_disjoint_and_use_the_starting_parameters():
  """One compiled step, run with either group's learning rate at zero (bitwise comparisons)."""
  sgd = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
  learn = learner(forward=sgd, inverse=sgd)
  batch = toy_batch()
  state = learn.init(jax.random.key(0), batch['image'])
  step = jax.jit(learn.train_step)

  def run(forward_lr, inverse_lr):
    new_state, _ = step(with_learning_rates(state, forward_lr, inverse_lr), batch,
                        jax.random.key(1))
    return new_state.params['layers']

  both, forward_only, inverse_only = run(0.1, 0.1), run(0.1, 0.0), run(0.0, 0.1)
  for l in range(1, len(CHANNELS) + 1):
    old = state.params['layers'][l - 1]
    assert_all_changed(old['forward'], both[l - 1]['forward'])
    # the inverse update never changes θ, the forward update never changes λ
    assert_same(old['inverse'], forward_only[l - 1]['inverse'])
    assert_same(old['forward'], inverse_only[l - 1]['forward'])
    # this step's targets use the inverses before their update, and the inverse loss the
    # forward weights before theirs
    assert_same(both[l - 1]['forward'], forward_only[l - 1]['forward'])
    assert_same(both[l - 1]['inverse'], inverse_only[l - 1]['inverse'])
    if l >= 2:
      assert_all_changed(old['inverse'], both[l - 1]['inverse'])


def test_dtp_updates_alone_decrease_the_loss():
  """A few Adam steps on one batch with the top frozen: only the DTP updates can help."""
  adam = optax.adam(1e-2)
  learn = learner(forward=adam, inverse=adam, top=optax.set_to_zero())
  batch = toy_batch(size=6)
  state = learn.init(jax.random.key(0), batch['image'])
  step = jax.jit(learn.train_step)
  losses = []
  for i in range(16):
    state, metrics = step(state, batch, jax.random.key(i))
    losses.append(float(metrics['loss']))            # ℒ before the step's update
  assert np.all(np.isfinite(losses))
  assert losses[-1] < 0.9 * losses[0]


def test_eval_metrics_are_means_over_unmasked_examples():
  learn = learner()
  batch = toy_batch()
  state = learn.init(jax.random.key(0), batch['image'])
  masked = learn.eval_step(state, {**batch, 'mask': jnp.array([1.0, 1.0, 0.0, 0.0])})
  first_two = learn.eval_step(state, jax.tree.map(lambda x: x[:2], batch))
  assert set(masked) == {'loss', 'xent', 'accuracy'}
  for key in masked:
    np.testing.assert_allclose(masked[key], first_two[key], rtol=1e-6)
  features = learn.features(state, batch['image'])
  assert [h.shape for h in features] == [(4, 4, 4, 3), (4, 2, 2, 4)]


def test_bad_configurations_are_refused():
  forwards, sgd = forward_layers(), optax.sgd(0.1)
  kwargs = dict(forward_optimizer=sgd, inverse_optimizer=sgd, top_optimizer=sgd,
                target_step=0.5, noise_std=0.3)
  with pytest.raises(ValueError, match='take 1 inverses'):
    dtp.make_dtp_learner(forwards, [DTPInverse(3)] * 2, EmbeddingHead(3), supervised, **kwargs)
  with pytest.raises(ValueError, match='target_step'):
    dtp.make_dtp_learner(forwards, [DTPInverse(3)], EmbeddingHead(3), supervised,
                         **{**kwargs, 'target_step': -1.0})
  wrong = dtp.make_dtp_learner(forwards, [DTPInverse(5)], EmbeddingHead(3), supervised, **kwargs)
  with pytest.raises(ValueError, match='inverse g_2 maps'):
    jax.eval_shape(wrong.init, jax.random.key(0), toy_batch()['image'])
  with pytest.raises(ValueError, match='unknown downsample'):
    DTPForward(3, 'avg').init(jax.random.key(0), jnp.ones((1, 4, 4, 1)))
