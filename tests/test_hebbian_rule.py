"""Krotov–Hopfield rule: the reference notebook's minibatch update, Eq. 4's steady state, guards."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlocal.rules import hebbian as hb


def reference_step(W, v, eps, p, k, delta, prec=1e-30):
  """The reference recipe in NumPy, in its own form: examples are columns, ranking by argsort."""
  synapses, inputs = np.array(W), np.asarray(v).T                          # (K, N), (N, B)
  num_hidden, batch = synapses.shape[0], inputs.shape[1]
  tot_input = (np.sign(synapses) * np.absolute(synapses) ** (p - 1)) @ inputs   # (K, B)
  order = np.argsort(tot_input, axis=0)
  columns = np.arange(batch)
  yl = np.zeros((num_hidden, batch))
  yl[order[num_hidden - 1, columns], columns] = 1.0
  yl[order[num_hidden - k, columns], columns] = -delta
  xx = np.sum(yl * tot_input, axis=1)
  ds = yl @ inputs.T - xx[:, None] * synapses
  nc = np.max(np.absolute(ds))
  if nc < prec:
    nc = prec
  return synapses + eps * (ds / nc)


@pytest.mark.parametrize('p, k, delta', [(2, 2, 0.4), (3, 7, 0.4), (4, 2, 0.3), (4.5, 3, 0.1)])
def test_ranking_update_matches_reference_recipe_in_float64(p, k, delta):
  rng = np.random.default_rng(0)
  W = rng.normal(size=(40, 30))
  with jax.enable_x64(True):
    step = jax.jit(functools.partial(hb.ranking_update, lr=0.02, p=p, k=k, delta=delta))
    W_jax = jnp.asarray(W)
    for _ in range(3):
      v = rng.uniform(size=(16, 30))
      W = reference_step(W, v, 0.02, p, k, delta)
      W_jax, _ = step(W_jax, jnp.asarray(v))
      assert W_jax.dtype == jnp.float64
      np.testing.assert_array_less(np.max(np.abs(np.asarray(W_jax) - W)), 1e-12)


def test_largest_change_is_lr_and_units_that_never_rank_stay_put():
  rng = np.random.default_rng(1)
  W = jnp.asarray(rng.normal(size=(100, 20)), jnp.float32)
  v = jnp.asarray(rng.uniform(size=(5, 20)), jnp.float32)
  lr, k = 0.03, 3
  new_W, metrics = jax.jit(functools.partial(hb.ranking_update, lr=lr, p=3, k=k, delta=0.4))(W, v)
  order = np.argsort(np.asarray(hb.currents(W, v, 3)), axis=1)
  ranked = set(order[:, -1]) | set(order[:, -k])
  changed = np.any(np.asarray(new_W) != np.asarray(W), axis=1)
  assert set(np.flatnonzero(changed)) == ranked
  np.testing.assert_array_equal(np.asarray(new_W)[~changed], np.asarray(W)[~changed])
  np.testing.assert_allclose(np.max(np.abs(new_W - W)), lr, rtol=1e-5)
  np.testing.assert_allclose(metrics['max_update'], lr, rtol=1e-6)
  assert int(metrics['active_units']) == len(ranked)


def test_largest_change_is_lr_to_rounding_in_float64():
  rng = np.random.default_rng(2)
  with jax.enable_x64(True):
    W = jnp.asarray(rng.normal(size=(30, 10)))
    v = jnp.asarray(rng.uniform(size=(8, 10)))
    new_W, _ = hb.ranking_update(W, v, lr=0.02, p=2, k=2, delta=0.4)
    np.testing.assert_allclose(np.max(np.abs(new_W - W)), 0.02, rtol=1e-12)


def _train(data, p, num_epochs, batch_size=100, lr0=0.02, num_hidden=50, seed=0):
  """The unsupervised phase: per-epoch reshuffle and linear anneal, everything inside one jit."""
  num_batches = data.shape[0] // batch_size

  @jax.jit
  def run(key):
    init_key, shuffle_key = jax.random.split(key)
    W = hb.init_weights(init_key, num_hidden, data.shape[1])

    def epoch(W, e):
      order = jax.random.permutation(jax.random.fold_in(shuffle_key, e), data.shape[0])
      batches = data[order[:num_batches * batch_size]].reshape(num_batches, batch_size, -1)
      lr = hb.annealed_lr(lr0, e, num_epochs)

      def step(W, v):
        return hb.ranking_update(W, v, lr=lr, p=p, k=2, delta=0.4)

      return jax.lax.scan(step, W, batches)

    return jax.lax.scan(epoch, W, jnp.arange(num_epochs))

  return run(jax.random.key(seed))


@pytest.mark.parametrize('p', [2, 3, 4])
def test_rows_converge_to_the_unit_p_sphere(p):
  # sparse non-negative inputs: 20 % of the 64 pixels on, with intensities in [0, 1)
  key_on, key_value = jax.random.split(jax.random.key(3))
  data = (jax.random.uniform(key_on, (6000, 64)) < 0.2) * jax.random.uniform(key_value, (6000, 64))
  W, metrics = _train(data, p, num_epochs=30)
  hb.check_weights(W, p)
  row_norms = np.sum(np.abs(np.asarray(W)) ** p, axis=1)
  assert abs(np.median(row_norms) - 1) < 0.05, np.median(row_norms)
  np.testing.assert_allclose(metrics['max_update'][-1], hb.annealed_lr(0.02, 29, 30), rtol=1e-5)


@pytest.mark.parametrize('w_inh', [0.0, 0.05, 0.5, 0.9, 0.99])
def test_steady_state_solves_eq4(w_inh):
  rng = np.random.default_rng(4)
  with jax.enable_x64(True):
    I = jnp.asarray(rng.normal(size=(16, 200)) + 0.5)
    tol, max_iter = 1e-9, 1000
    h, iterations = jax.jit(functools.partial(hb.steady_state, w_inh=w_inh, tol=tol,
                                              max_iter=max_iter))(I)
    rates = jnp.maximum(h, 0)
    residual = h - (I - w_inh * (jnp.sum(rates, axis=1, keepdims=True) - rates))
    assert float(jnp.max(jnp.abs(residual))) < 10 * tol
    assert 1 <= int(iterations) < max_iter
    if w_inh * 199 > 1:                       # where the plain Jacobi iteration oscillates
      assert int(jnp.max(jnp.sum(h > 0, axis=1))) < 200


def test_strong_inhibition_keeps_one_winner_the_ranking_argmax():
  rng = np.random.default_rng(5)
  num_hidden, num_inputs, batch = 60, 400, 12
  with jax.enable_x64(True):
    W = jnp.asarray(rng.normal(size=(num_hidden, num_inputs)))
    winners = rng.permutation(num_hidden)[:batch]
    # v_b along W_winner: a current of 3 for the winner, |I| ~ 0.15 for the rest
    v = 3 * W[winners] / jnp.sum(W[winners] ** 2, axis=1, keepdims=True)
    I = hb.currents(W, v, 2)
    h, _ = hb.steady_state(I, w_inh=0.9)
    assert np.all(np.sum(np.asarray(h) > 0, axis=1) == 1)
    g_exact = hb.exact_activation(h, 1e-3, 0.4)
    g_ranking = hb.ranking_activation(I, 2, 0.4)
    np.testing.assert_array_equal(np.argmax(g_exact, axis=1), winners)
    np.testing.assert_array_equal(g_exact == 1, g_ranking == 1)

    new_W, metrics = jax.jit(functools.partial(
        hb.exact_update, lr=0.02, p=2, delta=0.4, w_inh=0.9, h_star=1e-3))(W, v)
    changed = np.flatnonzero(np.any(np.asarray(new_W) != np.asarray(W), axis=1))
    np.testing.assert_array_equal(changed, np.sort(winners))
    assert int(metrics['active_units']) == batch
    np.testing.assert_allclose(metrics['max_update'], 0.02, rtol=1e-12)
    assert int(metrics['solver_iterations']) >= 1


def test_exact_activation_is_piecewise():
  h = jnp.array([-1.0, 0.0, 0.1, 0.5, 0.99, 1.0, 3.0])
  np.testing.assert_array_equal(hb.exact_activation(h, h_star=1.0, delta=0.3),
                                np.array([0, 0, -0.3, -0.3, -0.3, 1, 1], np.float32))


def test_annealed_lr_is_linear_per_epoch():
  assert hb.annealed_lr(0.02, 0, 10) == 0.02
  np.testing.assert_allclose(hb.annealed_lr(0.02, 5, 10), 0.01)
  np.testing.assert_allclose(hb.annealed_lr(0.04, jnp.arange(4), 4), [0.04, 0.03, 0.02, 0.01])


def test_sphere_deviation():
  W = jnp.array([[0.6, -0.8, 0.0], [1.0, 1.0, 0.0]])
  np.testing.assert_allclose(hb.sphere_deviation(W, 2), 0.5, rtol=1e-6)


def test_check_weights_catches_nan_and_collapse():
  healthy = hb.init_weights(jax.random.key(6), 20, 30)
  healthy = healthy / jnp.sum(jnp.abs(healthy) ** 3, axis=1, keepdims=True) ** (1 / 3)
  hb.check_weights(healthy, 3)
  with pytest.raises(hb.CollapseError, match='NaN or inf'):
    hb.check_weights(healthy.at[4, 2].set(jnp.nan), 3)
  with pytest.raises(hb.CollapseError, match='collapsed'):
    hb.check_weights(np.full((20, 30), 1e-45, np.float32), 3)
  assert issubclass(hb.CollapseError, FloatingPointError)


W_SMALL, V_SMALL, I_SMALL = jnp.ones((4, 3)), jnp.ones((2, 3)), jnp.ones((2, 4))


@pytest.mark.parametrize('call, message', [
    (lambda: hb.currents(W_SMALL, V_SMALL, p=1.5), 'p '),
    (lambda: hb.ranking_activation(I_SMALL, k=1, delta=0.4), 'k '),
    (lambda: hb.ranking_activation(I_SMALL, k=5, delta=0.4), 'k '),
    (lambda: hb.ranking_activation(I_SMALL, k=2.0, delta=0.4), 'k '),
    (lambda: hb.ranking_activation(I_SMALL, k=2, delta=-0.1), 'delta'),
    (lambda: hb.normalise_update(W_SMALL, prec=0.0), 'prec'),
    (lambda: hb.ranking_update(W_SMALL, V_SMALL, lr=-0.1, p=2, k=2, delta=0.4), 'lr'),
    (lambda: hb.steady_state(I_SMALL, w_inh=1.0), 'w_inh'),
    (lambda: hb.steady_state(I_SMALL, w_inh=-0.1), 'w_inh'),
    (lambda: hb.steady_state(I_SMALL, w_inh=0.5, tol=0.0), 'tol'),
    (lambda: hb.steady_state(I_SMALL, w_inh=0.5, max_iter=0), 'max_iter'),
    (lambda: hb.exact_activation(I_SMALL, h_star=0.0, delta=0.4), 'h_star'),
    (lambda: hb.annealed_lr(0.02, 0, 0), 'num_epochs'),
    (lambda: hb.annealed_lr(0.02, 11, 10), 'epoch'),
    (lambda: hb.init_weights(jax.random.key(0), 0, 3), 'num_hidden'),
    (lambda: hb.init_weights(jax.random.key(0), 2, 3, std=0.0), 'std'),
])
def test_impossible_hyperparameters_raise(call, message):
  with pytest.raises(ValueError, match=message):
    call()
