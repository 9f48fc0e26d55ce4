"""The learning-rate schedule and optimiser choices."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlocal.optim import make_optimizer, step_decay


def test_step_decay_matches_the_reference_per_epoch_rule():
  steps_per_epoch, milestones = 7, (2, 4, 5)
  schedule = step_decay(1.0, milestones, 0.25, steps_per_epoch)
  for k in range(8 * steps_per_epoch):
    epoch = k // steps_per_epoch + 1  # 1-based epoch of the k-th update
    expected = 0.25 ** sum(m <= epoch - 1 for m in milestones)
    np.testing.assert_allclose(schedule(jnp.int32(k)), expected, rtol=1e-6)


def test_optimizer_uses_the_schedule_from_its_first_update():
  tx = make_optimizer('sgd', step_decay(0.5, (1,), 0.1, steps_per_epoch=2))
  params = jnp.zeros(())
  state = tx.init(params)
  moves = []
  for _ in range(4):
    updates, state = tx.update(jnp.ones(()), state, params)
    moves.append(float(-updates))
  np.testing.assert_allclose(moves, [0.5, 0.5, 0.05, 0.05], rtol=1e-6)


def test_weight_decay_is_added_to_the_gradient():
  tx = make_optimizer('sgd', optax.constant_schedule(1.0), weight_decay=0.1)
  updates, _ = tx.update(jnp.zeros(()), tx.init(jnp.ones(())), jnp.ones(()))
  np.testing.assert_allclose(updates, -0.1, rtol=1e-6)


def test_unknown_optimizer():
  with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
    make_optimizer('rmsprop', optax.constant_schedule(1.0))


def test_piecewise_epochs_follows_the_table():
  from jaxlocal.optim import piecewise_epochs
  schedule = piecewise_epochs((1.0, 0.5, 0.1), (2, 3), steps_per_epoch=4)
  got = [float(schedule(jnp.int32(k))) for k in range(0, 20, 4)]
  np.testing.assert_allclose(got, [1.0, 1.0, 0.5, 0.1, 0.1], rtol=1e-6)
  with pytest.raises(ValueError, match='need 2 boundaries'):
    piecewise_epochs((1.0, 0.5, 0.1), (2,), 4)
