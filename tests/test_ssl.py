"""Self-supervised local learning: the two-view losses against NumPy, the gradient block, the
one-block schedules (greedy, randomized, wave), the linear probe phase and the method end to end."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlocal.blocks import Block, make_learner
from jaxlocal.models.layers import Dense
from jaxlocal.objectives.base import classifier
from jaxlocal.objectives import contrastive
from jaxlocal.objectives.contrastive import contrastive_hinge, simclr, split_views
from jaxlocal.schedules import BlockSchedule


def numpy_hinge(za, zb, m1, m2, negatives, weight):
  """The reference's sums, written out pair by pair, divided by the number of anchors."""
  n = len(za)
  d = np.abs(za[:, None, :] - zb[None, :, :]).sum(-1)
  total = sum(max(d[s, s] - m1, 0.0) for s in range(n))
  if negatives == 0:
    pairs = [(s, t) for s in range(n) for t in range(n) if t != s]
  else:
    pairs = [(s, s + j) for j in range(1, negatives + 1) for s in range(n) if s + j < n]
  total += weight * sum(max(m2 - d[s, t], 0.0) for s, t in pairs)
  return total / n


def views(n=7, dim=5, seed=0):
  ka, kb = jax.random.split(jax.random.key(seed))
  return jax.random.normal(ka, (n, dim)), jax.random.normal(kb, (n, dim))


@pytest.mark.parametrize('negatives, weight', [(0, 1.0), (4, 0.2), (2, 1.0)])
def test_hinge_matches_numpy(negatives, weight):
  za, zb = views()
  got = contrastive_hinge(za, zb, m1=1.0, m2=6.0, negatives=negatives, negative_weight=weight)
  want = numpy_hinge(np.asarray(za), np.asarray(zb), 1.0, 6.0, negatives, weight)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  assert want > 0  # both hinge terms are active at these margins


def test_gradient_block_zeroes_the_anchor_gradient():
  za, zb = views()
  loss = lambda a, b, block: contrastive_hinge(a, b, m1=1.0, m2=6.0, grad_block=block)
  ga, gb = jax.grad(loss, argnums=(0, 1))(za, zb, True)
  assert np.all(np.asarray(ga) == 0.0) and np.abs(gb).sum() > 0
  ga_free, _ = jax.grad(loss, argnums=(0, 1))(za, zb, False)
  assert np.abs(ga_free).sum() > 0


@pytest.mark.parametrize('block_bytes', [2**22, 3 * 4 * 4])  # one block; 3 rows, padded
@pytest.mark.parametrize('n_a, n_b', [(7, 7), (7, 4)])
def test_l1_distance_gradient_equals_autodiff_of_the_formula(monkeypatch, block_bytes, n_a, n_b):
  monkeypatch.setattr(contrastive, '_GRADIENT_BLOCK_BYTES', block_bytes)
  za = jax.random.normal(jax.random.key(1), (n_a, 4))
  zb = jax.random.normal(jax.random.key(2), (n_b, 4))
  za = za.at[0, 1].set(zb[2, 1])  # a tie: |x|' = 1 at x = 0 for both
  g = jax.random.normal(jax.random.key(3), (n_a, n_b))
  naive = lambda a, b: jnp.sum(jnp.abs(a[:, None, :] - b[None, :, :]), axis=-1)
  want = jax.vjp(naive, za, zb)[1](g)
  value, vjp = jax.vjp(contrastive.l1_distances, za, zb)
  np.testing.assert_allclose(value, naive(za, zb), rtol=1e-6)
  for got, expected in zip(vjp(g), want):
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('loss', [
    lambda a, b, m: contrastive_hinge(a, b, m1=1.0, m2=6.0, mask=m),
    lambda a, b, m: contrastive_hinge(a, b, m1=1.0, m2=6.0, negatives=3, mask=m),
    lambda a, b, m: simclr(a, b, temperature=0.5, mask=m),
])
def test_padding_examples_drop_out(loss):
  za, zb = views(n=5)
  pad = lambda z: jnp.concatenate([z, jnp.repeat(z[-1:], 3, axis=0)])
  mask = jnp.asarray([1.0] * 5 + [0.0] * 3)
  np.testing.assert_allclose(loss(pad(za), pad(zb), mask), loss(za, zb, None), rtol=1e-5)


def test_simclr_matches_numpy():
  za, zb = views(n=6)
  tau = 0.5
  ua = np.asarray(za) / np.linalg.norm(za, axis=1, keepdims=True)
  ub = np.asarray(zb) / np.linalg.norm(zb, axis=1, keepdims=True)

  def side(u, v):
    total = 0.0
    for s in range(len(u)):
      logits = [u[s] @ v[t] / tau for t in range(len(u))]
      logits += [u[s] @ u[t] / tau for t in range(len(u)) if t != s]
      total += np.log(np.sum(np.exp(logits))) - u[s] @ v[s] / tau
    return total / len(u)

  np.testing.assert_allclose(simclr(za, zb, temperature=tau), side(ua, ub) + side(ub, ua),
                             rtol=1e-5)


def test_split_views_needs_an_even_batch():
  with pytest.raises(ValueError, match='views=2'):
    split_views(jnp.zeros((3, 2)))


def test_schedules_pick_blocks():
  seq, wave = BlockSchedule('sequential', 3), BlockSchedule('wave', 2)
  assert [int(seq.active_block(jnp.int32(t), 3)) for t in range(12)] == \
      [0] * 3 + [1] * 3 + [2] * 6
  assert [int(wave.active_block(jnp.int32(t), 3)) for t in range(8)] == \
      [0, 0, 1, 1, 2, 2, 0, 0]
  draw = lambda seed: [int(BlockSchedule('random', seed=seed).active_block(jnp.int32(t), 3))
                       for t in range(30)]
  assert set(draw(0)) == {0, 1, 2} and draw(0) == draw(0) and draw(0) != draw(1)
  with pytest.raises(ValueError, match='steps_per_block'):
    BlockSchedule('sequential')
  with pytest.raises(ValueError, match='unknown block schedule'):
    BlockSchedule('greedy')


def three_block_learner(schedule):
  blocks = [Block(Dense(6), classifier(), name=f'b{i}') for i in range(3)]
  return make_learner(blocks, optax.adam(1e-2), schedule=schedule)


def changed_blocks(before, after):
  return [i for i in range(3) if any(
      not np.array_equal(a, b) for a, b in zip(jax.tree.leaves((before.params[i],
                                                                before.opt_state[i])),
                                               jax.tree.leaves((after.params[i],
                                                                after.opt_state[i]))))]


@pytest.mark.parametrize('kind', ['sequential', 'random', 'wave'])
def test_one_block_schedules_change_exactly_the_active_block(kind):
  learner = three_block_learner(BlockSchedule(kind, 2))
  batch = {'image': jax.random.normal(jax.random.key(1), (8, 6)),
           'label': jnp.arange(8) % 6}
  state = learner.init(jax.random.key(0), batch['image'])
  step = jax.jit(learner.train_step)
  seen = []
  for t in range(8):
    new, metrics = step(state, batch, jax.random.key(100 + t))
    active = int(metrics['active_block'])
    assert changed_blocks(state, new) == [active]
    seen.append(active)
    state = new
  if kind == 'sequential':
    assert seen == [0, 0, 1, 1, 2, 2, 2, 2]
  elif kind == 'wave':
    assert seen == [0, 0, 1, 1, 2, 2, 0, 0]
  else:
    assert len(set(seen)) > 1


@pytest.mark.parametrize('kind', ['sequential', 'random', 'wave'])
def test_one_block_schedules_evaluate_the_loss_they_train(kind):
  """The evaluation ``loss`` is the block that learned last (the mean under 'random'), so a
  greedy run's test loss is not swamped by the untrained blocks above the active one."""
  learner = three_block_learner(BlockSchedule(kind, 2))
  batch = {'image': jax.random.normal(jax.random.key(1), (8, 6)),
           'label': jnp.arange(8) % 6}
  state = learner.init(jax.random.key(0), batch['image'])
  step, evaluate = jax.jit(learner.train_step), jax.jit(learner.eval_step)
  for t in range(3):
    state, metrics = step(state, batch, jax.random.key(100 + t))
  per_block = [float(v) for k, v in sorted(evaluate(state, batch).items())
               if k.endswith('/loss')]
  loss = float(evaluate(state, batch)['loss'])
  if kind == 'random':
    np.testing.assert_allclose(loss, np.mean(per_block), rtol=1e-6)
  else:
    assert int(metrics['active_block']) == 1
    np.testing.assert_allclose(loss, per_block[1], rtol=1e-6)
    assert loss != pytest.approx(sum(per_block))


def test_one_block_schedules_need_an_objective_per_block():
  blocks = [Block(Dense(6), name='hidden'), Block(Dense(3), classifier(), name='out')]
  with pytest.raises(ValueError, match='hidden'):
    make_learner(blocks, optax.adam(1e-2), schedule=BlockSchedule('random'))


def write_npz(folder, name, shape=(8, 8, 1), classes=4, n=48, seed=0):
  rng = np.random.default_rng(seed)
  arrays = {f'x_{s}': rng.integers(0, 256, (n, *shape), dtype=np.uint8) for s in ('train', 'test')}
  arrays.update({f'y_{s}': (np.arange(n) % classes).astype(np.uint8) for s in ('train', 'test')})
  np.savez(folder / f'{name}.npz', **arrays)


def tiny_ssl_config(tmp_path, row):
  from jaxlocal.recipes import config_file
  write_npz(tmp_path, 'encoder_data')
  write_npz(tmp_path, 'probe_data', classes=3, seed=1)
  c = config_file('ssl_hinge_fmnist_to_mnist', row)
  c.update(dataset='encoder_data', data_dir=str(tmp_path), image_size=0, progress_bar=False,
           eval_batch_size=20)
  c.ssl.update(num_epochs=1, batch_size=16)
  c.probe.update(dataset='probe_data', blocks=(0, 1, -1), num_epochs=2, batch_size=16)
  return c


@pytest.mark.parametrize('row, encoder_epochs', [('gll_bp', 3), ('e2e_dtp', 1), ('random', 0)])
def test_method_trains_the_encoder_then_probes_every_layer_on_the_transfer_data(
    tmp_path, row, encoder_epochs):
  import json
  from jaxlocal.experiment import train_and_evaluate
  config = tiny_ssl_config(tmp_path, row)
  record = train_and_evaluate(config, str(tmp_path / 'run'))
  lines = [json.loads(l) for l in (tmp_path / 'run' / 'metrics.jsonl').read_text().splitlines()]
  assert sum(r['phase'] == 'encoder' for r in lines) == encoder_epochs
  probes = [r for r in lines if r['phase'] == 'probe' and 'evaluator' not in r]
  assert len(probes) == 2 and 0.0 <= record['test_accuracy'] <= 1.0
  assert {f'test/probe_layer{i}/accuracy' for i in range(3)} <= set(probes[-1])
  robust = json.loads((tmp_path / 'run' / 'robustness.json').read_text())
  assert set(robust['accuracy']) == {f'probe_layer{i}' for i in range(3)}
  line, = [r for r in lines if r.get('evaluator') == 'robustness']
  assert line['phase'] == 'probe' and line['epoch'] == 2
  assert line['accuracy/probe_layer0'] == robust['accuracy']['probe_layer0']
  if encoder_epochs:
    assert np.isfinite(lines[0]['test/loss'])


def test_probe_reads_the_features_of_the_chosen_layers_with_the_target_classes(tmp_path):
  from jaxlocal.data import load_dataset
  from jaxlocal.methods import ssl
  config = tiny_ssl_config(tmp_path, 'gll_bp')
  phases = ssl.phases(config, load_dataset('encoder_data', data_dir=str(tmp_path)))
  probe = phases[-1]
  data = probe.data(None, None)
  # mnist3 on 8x8: 4x4x32, 2x2x64, 1x1x128 features, concatenated
  assert data.x_train.shape == (48, 1, 1, 4 * 4 * 32 + 2 * 2 * 64 + 128)
  state = probe.learner.init(jax.random.key(0), jnp.asarray(data.x_train[:2]))
  assert state.params[-1]['forward']['probe']['linear']['kernel'].shape == (128, 3)


@pytest.mark.parametrize('change, match', [
    (lambda c: c.augment.update(views=1), 'views=2'),
    (lambda c: c.ssl.update(scheme='gll', update_rule='dtp'), 'dtp'),
    (lambda c: c.probe.update(blocks=(3,)), 'probe.blocks'),
    (lambda c: c.ssl.update(loss='triplet'), 'ssl.loss'),
    (lambda c: c.update(model='resnet'), 'model'),
    (lambda c: c.probe.update(dataset='odd_shape'), 'shape'),
])
def test_bad_configs_are_named(tmp_path, change, match):
  from jaxlocal.data import load_dataset
  from jaxlocal.methods import ssl
  config = tiny_ssl_config(tmp_path, 'gll_bp')
  write_npz(tmp_path, 'odd_shape', shape=(10, 10, 1))
  change(config)
  with pytest.raises(ValueError, match=match):
    ssl.phases(config, load_dataset('encoder_data', data_dir=str(tmp_path)))


def test_the_loop_picks_block_steps_on_the_host_exactly_as_train_step_would():
  """The training loop compiles each block's step and picks one per step on the host; the
  result equals running the learner's own train_step (lax.switch) in the same loop."""
  from tqdm.auto import tqdm
  from jaxlocal import data as data_lib
  from jaxlocal.train import make_epoch_runner
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (48, 4, 4, 1), dtype=np.uint8)
  y = (np.arange(48) % 6).astype(np.int32)
  dataset = data_lib.Dataset('tiny', x, y, x, y, 6, np.full(1, 0.5, np.float32),
                             np.full(1, 0.25, np.float32), 'synthetic')
  from jaxlocal.models.mlp import DenseBlock
  blocks = [Block(DenseBlock(6, use_batch_norm=False), classifier(), name=f'b{i}')
            for i in range(3)]
  learner = make_learner(blocks, optax.adam(1e-2), schedule=BlockSchedule('random', seed=3))
  finals = []
  for candidate in (learner, learner._replace(block_steps=None)):
    state = candidate.init(jax.random.key(0), jnp.zeros((2, 4, 4, 1)))
    run_epoch = make_epoch_runner(candidate, dataset, 8, data_lib.Augment(), state,
                                  jnp.asarray(x), jnp.asarray(y))
    for epoch in (1, 2):
      with tqdm(total=48, disable=True) as bar:
        state, metrics, _ = run_epoch(state, jax.random.key(epoch), bar, epoch)
    finals.append((state, metrics))
  (a, ma), (b, mb) = finals
  assert int(a.step) == int(b.step) == 12
  for u, v in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
    np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-7)
  assert ma['active_block'] == mb['active_block']
