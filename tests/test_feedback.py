"""Feedback alignment: forward as the plain layer, backward through B, B = W is backprop,
updated feedback moves with W, and the alignment-angle diagnostic."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlocal.blocks import Block, make_learner
from jaxlocal.models.feedback import FAConv, FADense
from jaxlocal.rules.feedback import cosine_angle, with_true_feedback
from jaxlocal.models.layers import Conv, Dense
from jaxlocal.objectives.base import classifier
from jaxlocal.optim import make_optimizer


def dense_case():
  x = jax.random.normal(jax.random.key(0), (5, 7))
  layer = FADense(3)
  params = layer.init(jax.random.key(1), x)['params']
  return layer, params, x


def conv_case():
  x = jax.random.normal(jax.random.key(0), (2, 6, 6, 3))
  layer = FAConv(4, kernel_size=3, stride=2, padding=1)
  params = layer.init(jax.random.key(1), x)['params']
  return layer, params, x


def grads(layer, params, x, dy):
  """(δparams, δx) of <layer(x), dy>."""
  return jax.grad(lambda p, x_: jnp.vdot(layer.apply({'params': p}, x_), dy),
                  argnums=(0, 1))(params, x)


@pytest.mark.parametrize('case, plain', [
    (dense_case, lambda p: (Dense(3), {'linear': {'kernel': p['kernel'], 'bias': p['bias']}})),
    (conv_case, lambda p: (Conv(4, kernel_size=3, stride=2, padding=1),
                           {'conv': {'kernel': p['kernel'], 'bias': p['bias']}})),
])
def test_forward_equals_the_plain_layer(case, plain):
  layer, params, x = case()
  module, plain_params = plain(params)
  np.testing.assert_allclose(layer.apply({'params': params}, x),
                             module.apply({'params': plain_params}, x), rtol=1e-5, atol=1e-6)


def test_dense_backward_sends_the_error_through_B():
  layer, params, x = dense_case()
  dy = jax.random.normal(jax.random.key(2), (5, 3))
  d_params, dx = grads(layer, params, x, dy)
  W, B = np.asarray(params['kernel']), np.asarray(params['feedback'])
  assert not np.allclose(W, B)
  np.testing.assert_allclose(dx, np.asarray(dy) @ B.T, rtol=1e-5, atol=1e-6)       # Bᵀδy
  np.testing.assert_allclose(d_params['kernel'], np.asarray(x).T @ np.asarray(dy),
                             rtol=1e-5, atol=1e-6)                               # true δW
  np.testing.assert_allclose(d_params['bias'], np.asarray(dy).sum(0), rtol=1e-5)
  assert not np.any(d_params['feedback'])                                        # B is fixed


def test_conv_backward_sends_the_error_through_B():
  layer, params, x = conv_case()
  dy = jax.random.normal(jax.random.key(2), (2, 3, 3, 4))
  d_params, dx = grads(layer, params, x, dy)
  conv = lambda x_, k: jax.lax.conv_general_dilated(
      x_, k, (2, 2), ((1, 1), (1, 1)), dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  expected_dx = jax.vjp(lambda x_: conv(x_, params['feedback']), x)[1](dy)[0]
  expected_dk = jax.vjp(lambda k: conv(x, k), params['kernel'])[1](dy)[0]
  np.testing.assert_allclose(dx, expected_dx, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(d_params['kernel'], expected_dk, rtol=1e-5, atol=1e-5)
  assert not np.any(d_params['feedback'])


@pytest.mark.parametrize('case, plain', [(dense_case, Dense(3)),
                                         (conv_case, Conv(4, kernel_size=3, stride=2))])
def test_with_B_equal_W_it_is_backprop(case, plain):
  layer, params, x = case()
  true = with_true_feedback(params)
  dy = jax.random.normal(jax.random.key(3), layer.apply({'params': params}, x).shape)
  d_fa, dx_fa = grads(layer, true, x, dy)
  name = 'linear' if isinstance(plain, Dense) else 'conv'
  plain_params = {name: {'kernel': params['kernel'], 'bias': params['bias']}}
  d_bp, dx_bp = grads(plain, plain_params, x, dy)
  np.testing.assert_allclose(dx_fa, dx_bp, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(d_fa['kernel'], d_bp[name]['kernel'], rtol=1e-5, atol=1e-5)


def _two_layer_learner(update_feedback, optimizer):
  import flax.linen as nn

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
      h = nn.relu(Dense(16, name='bottom')(x.reshape(x.shape[0], -1)))
      h = nn.relu(FADense(16, update_feedback=update_feedback, name='hidden')(h))
      return Dense(3, name='out')(h)

  return make_learner([Block(Net(), classifier(), name='net')], optimizer)


@pytest.mark.parametrize('optimizer', [optax.sgd(0.1), optax.adam(1e-2)], ids=['sgd', 'adam'])
def test_updated_feedback_moves_by_exactly_the_weights_increment(optimizer):
  learner = _two_layer_learner(True, optimizer)
  x = jax.random.normal(jax.random.key(0), (8, 2, 2, 1))
  batch = {'image': x, 'label': jnp.arange(8) % 3}
  state = learner.init(jax.random.key(1), x)
  start = state.params[0]['forward']['hidden']
  step = jax.jit(learner.train_step)
  for i in range(3):
    state, _ = step(state, batch, jax.random.key(i))
  end = state.params[0]['forward']['hidden']
  moved = np.asarray(end['kernel'] - start['kernel'])
  assert np.abs(moved).max() > 1e-4
  # the same update Δ added to different bases: equal up to the float32 rounding of the sums
  np.testing.assert_allclose(np.asarray(end['feedback'] - start['feedback']), moved, atol=1e-6)


def test_fixed_feedback_stays_fixed_even_with_weight_decay():
  learner = _two_layer_learner(False, make_optimizer('adam', optax.constant_schedule(1e-2),
                                                     weight_decay=0.1))
  x = jax.random.normal(jax.random.key(0), (8, 2, 2, 1))
  batch = {'image': x, 'label': jnp.arange(8) % 3}
  state = learner.init(jax.random.key(1), x)
  new, _ = jax.jit(learner.train_step)(state, batch, jax.random.key(0))
  before, after = state.params[0]['forward']['hidden'], new.params[0]['forward']['hidden']
  np.testing.assert_array_equal(after['feedback'], before['feedback'])
  assert not np.allclose(after['kernel'], before['kernel'])


def test_alignment_angle_is_reported_and_zero_for_true_feedback():
  import flax.linen as nn

  class Bottom(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.relu(Dense(16)(x.reshape(x.shape[0], -1)))

  class Top(nn.Module):
    @nn.compact
    def __call__(self, h):
      return Dense(3)(nn.relu(FADense(16)(h)))

  # global backprop through the FA layer: only the block below it gets an aligned gradient
  learner = make_learner([Block(Bottom(), name='bottom'), Block(Top(), classifier(), name='top')],
                         optax.sgd(0.1), detach=False)
  x = jax.random.normal(jax.random.key(0), (8, 2, 2, 1))
  batch = {'image': x, 'label': jnp.arange(8) % 3, 'mask': jnp.ones(8)}
  state = learner.init(jax.random.key(1), x)
  metrics = learner.eval_step(state, batch)
  assert 1.0 < float(metrics['bottom/fa_angle']) < 179.0
  assert float(metrics['top/fa_angle']) < 0.1   # arccos near 1 in float32: ~0.02° noise
  aligned = state.replace(params=with_true_feedback(state.params))
  assert float(learner.eval_step(aligned, batch)['bottom/fa_angle']) < 0.1


def test_cosine_angle():
  a = {'x': jnp.array([1.0, 0.0])}
  assert float(cosine_angle(a, {'x': jnp.array([0.0, 2.0])})) == pytest.approx(90.0)
  assert float(cosine_angle(a, {'x': jnp.array([-3.0, 0.0])})) == pytest.approx(180.0)
  assert float(cosine_angle(a, a)) == pytest.approx(0.0, abs=1e-3)
