"""Data and block parallel training on simulated CPU devices (four, from conftest.py).

Block parallel is checked against the single-device reference of the same delayed schedule
(:func:`jaxlocal.parallel.pipeline.delayed_schedule`), data parallel against one device.

Where the two sides sum in different orders, the nets train with SGD: a bias followed by
BatchNorm has a gradient of exactly zero in exact arithmetic, and Adam divides its round-off by
its own magnitude, so 1e-9 differences become steps of the full learning rate (in a bias that
BatchNorm then removes: the networks compute the same function). Where the order is the same
(pipeline vs reference on an MLP) they agree bitwise under Adam too.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tqdm.auto import tqdm

from jaxlocal import experiment
from jaxlocal import train
from jaxlocal.blocks import Block, make_learner
from jaxlocal.config_lib import hebbian_config
from jaxlocal.data import load_dataset, preprocess
from jaxlocal.data.augment import Augment
from jaxlocal.data.pipeline import epoch_permutation
from jaxlocal.methods import associated
from jaxlocal.methods.hebbian import hebbian_codes, hebbian_learner
from jaxlocal.methods.local_error import network_blocks
from jaxlocal.objectives.base import classifier
from jaxlocal.optim import optimizer_from_config
from jaxlocal.parallel.cost import step_seconds
from jaxlocal.parallel.mesh import MeshSpec, dataset_sharding, put, replicated
from jaxlocal.parallel.pipeline import Pipeline, delayed_schedule
from jaxlocal.parallel.stages import balance, chain, check_bounds, learner_stage, stages_of
from jaxlocal.recipes import config_file


def local_error_learner(model, image_shape, **fields):
  c = config_file('cifar10', 'vgg8b')
  c.model, c.num_hidden, c.num_layers = model, 32, 3
  c.update(fields)
  blocks = network_blocks(c, num_classes=10, image_shape=image_shape)
  return make_learner(blocks, optimizer_from_config(c, 10))


def micro_batches(image_shape, num=4, size=8, seed=0):
  k1, k2 = jax.random.split(jax.random.key(seed))
  return {'image': jax.random.normal(k1, (num, size, *image_shape)),
          'label': jax.random.randint(k2, (num, size), 0, 10)}


def run_pipeline(staged, states, batches, mesh_spec, key):
  pipe = Pipeline(staged, mesh_spec.make())
  states = pipe.place(states)
  take = lambda m: jax.tree.map(lambda a: a[m], batches)
  sums = pipe.zero_sums(states, take(0))
  feed = lambda m: jax.device_put(take(m), pipe.input_sharding())
  states, sums = pipe.run(states, sums, feed, len(batches['label']), key)
  return jax.device_get(states), pipe.metrics(sums), pipe


def run_reference(staged, states, batches, key):
  states, sums = jax.jit(functools.partial(delayed_schedule, staged))(states, batches, key)
  return jax.device_get(states), jax.device_get(sums)


def assert_trees_close(a, b, atol=0.0):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=atol)


@pytest.mark.parametrize('model,image_shape,bounds,optimizer', [
    ('mlp', (8, 8, 1), (1, 2, 3), 'adam'),         # identical blocks, a stage each
    ('vgg:8,M,16,M', (8, 8, 3), (1, 3), 'sgd'),    # blocks of different shapes, 2 in the middle
])
def test_block_parallel_equals_the_single_device_delayed_schedule(model, image_shape, bounds,
                                                                  optimizer):
  """predsim, dropout and BatchNorm. The conv net uses SGD: the reference runs its stages inside
  one ``lax.scan``, where XLA may order a convolution's sums differently, and Adam's
  normalisation turns such 1e-8 differences in a near-zero gradient into a full step."""
  learner = local_error_learner(model, image_shape, loss='predsim', dropout=0.1,
                                optimizer=optimizer, momentum=0.9, num_layers=1 + (model == 'mlp') * 2)
  batches = micro_batches(image_shape)
  staged = stages_of(learner, bounds)
  states = staged.split(learner.init(jax.random.key(1), batches['image'][0]))
  key = jax.random.key(2)
  ref_states, ref_metrics = run_reference(staged, states, batches, key)
  states, metrics, pipe = run_pipeline(staged, states, batches, MeshSpec(stage=len(bounds) + 1),
                                       key)
  assert [list(jax.tree.leaves(s)[0].devices())[0].id for s in pipe.place(states)] == \
      list(range(len(bounds) + 1))
  assert_trees_close(states, ref_states, atol=1e-6)
  assert metrics.keys() == ref_metrics.keys()
  np.testing.assert_allclose(metrics['loss'], ref_metrics['loss'], rtol=1e-6)
  # every parameter moved: each stage trained
  before = staged.split(learner.init(jax.random.key(1), batches['image'][0]))
  for new, old in zip(states, before):
    assert not np.allclose(jax.tree.leaves(new.params)[0], jax.tree.leaves(old.params)[0])


def test_one_stage_delayed_schedule_is_plain_training():
  learner = local_error_learner('mlp', (8, 8, 1), optimizer='sgd', momentum=0.9)
  batches = micro_batches((8, 8, 1), num=3)
  state = learner.init(jax.random.key(1), batches['image'][0])
  staged = stages_of(learner, ())
  key = jax.random.key(2)
  (ref,), _ = run_reference(staged, staged.split(state), batches, key)
  step = jax.jit(learner.train_step)
  for m in range(3):
    batch = jax.tree.map(lambda a: a[m], batches)
    state, _ = step(state, batch, jax.random.fold_in(jax.random.fold_in(key, m), 0))
  assert_trees_close(ref.params, state.params, atol=1e-6)


def test_stage_k_sees_microbatch_m_on_tick_m_plus_k():
  """Stage 1 of a two-stage pipeline trains on stage 0's output for micro-batch m computed with
  the stage-0 parameters of tick m (before its update on m): checked by hand, one block each."""
  learner = local_error_learner('mlp', (8, 8, 1), num_layers=1, dropout=0.0)
  batches = micro_batches((8, 8, 1), num=2)
  staged = stages_of(learner, (1,))
  s0, s1 = staged.split(learner.init(jax.random.key(1), batches['image'][0]))
  key = jax.random.key(2)
  (r0, r1), _ = run_reference(staged, (s0, s1), batches, key)
  take = lambda m: jax.tree.map(lambda a: a[m], batches)
  step0, step1 = (jax.jit(stage.step) for stage in staged.stages)
  k = lambda m, stage: jax.random.fold_in(jax.random.fold_in(key, m), stage)
  for m in range(2):  # stage 0 on tick m produces the input stage 1 uses on tick m + 1
    s0, out, _ = step0(s0, take(m)['image'], take(m), k(m, 0))
    s1, _, _ = step1(s1, out, {**take(m), 'image': out}, k(m, 1))
  assert_trees_close((r0.params, r1.params), (s0.params, s1.params), atol=1e-6)


def test_block_parallel_with_a_hebbian_stage():
  """A Krotov–Hopfield layer (explicit rule) feeding a supervised head on the next device."""
  h = hebbian_config().hebbian
  h.p, h.k = 3.0, 2
  hebb = hebbian_learner(h, 16, steps_per_epoch=4, unit_norm=False)
  codes = lambda state, x: hebbian_codes(state.params['W'], x.reshape(len(x), -1),
                                         current='dot', p=h.p, n=3.0, per_example=True)
  head = make_learner([Block(nn.Dense(10), classifier(), name='output')], optax.adam(1e-2))
  staged = chain(learner_stage(hebb, codes, 'hebbian'), *stages_of(head, ()).stages)
  batches = micro_batches((8, 8, 1), num=4)
  batches['image'] = jnp.abs(batches['image'])
  states = (hebb.init(jax.random.key(3), batches['image'][0]),
            head.init(jax.random.key(4), jnp.zeros((2, 16))))
  key = jax.random.key(5)
  ref_states, ref_metrics = run_reference(staged, states, batches, key)
  new_states, metrics, _ = run_pipeline(staged, states, batches, MeshSpec(stage=2), key)
  assert_trees_close(new_states, ref_states, atol=1e-6)
  assert not np.allclose(new_states[0].params['W'], states[0].params['W'])
  assert int(new_states[1].step) == 4 and 'accuracy' in metrics


def tiny_run_config(**mesh):
  c = config_file('mnist', 'mlp')
  c.dataset, c.num_epochs, c.batch_size, c.train_examples = 'digits', 1, 64, 256
  c.num_hidden, c.num_layers, c.progress_bar, c.eval_batch_size = 32, 2, False, 120
  c.optimizer, c.momentum = 'sgd', 0.9
  c.mesh.update(mesh)
  return c


def digits():
  return load_dataset('digits', train_examples=256)


def one_epoch(learner, dataset, mesh_spec, augment=Augment()):
  """(state, mean train metrics) after one epoch of the training loop on ``mesh_spec``."""
  mesh = mesh_spec.make()
  rep = replicated(mesh)
  x, y = put((dataset.x_train, dataset.y_train), dataset_sharding(mesh, len(dataset.x_train)))
  assert x.sharding.shard_shape(x.shape)[0] == len(x) // mesh.shape['data']  # 1/n per device
  example = preprocess(None, dataset.x_train[:2], mean=dataset.mean, std=dataset.std)
  state = jax.jit(learner.init, out_shardings=rep)(jax.random.key(0), example)
  run = train.make_epoch_runner(learner, dataset, 64, augment, state, x, y, mesh=mesh,
                                stage_bounds=mesh_spec.stage_bounds)
  with tqdm(disable=True) as bar:
    state, metrics, _ = run(state, jax.random.key(1), bar, 1)
  return jax.device_get(state), metrics


def associated_learner(dataset):
  c = config_file('al_mnist', 'mlp')
  c.associated.width = 32
  return associated.build(c, dataset, 4)


def hebbian_rule_learner(dataset):
  h = hebbian_config().hebbian
  return hebbian_learner(h, 16, steps_per_epoch=4, unit_norm=False)


def conv_learner(dataset):
  return local_error_learner('vgg:8,M', dataset.image_shape, loss='predsim', dropout=0.1,
                             optimizer='sgd', momentum=0.9)


@pytest.mark.parametrize('build,devices', [(conv_learner, 2), (associated_learner, 2),
                                           (hebbian_rule_learner, 4)])
def test_data_parallel_equals_one_device(build, devices):
  """BatchNorm statistics, dropout, augmentation and the explicit Hebbian rule included."""
  dataset = digits()
  learner = build(dataset)
  augment = Augment(crop_padding=1)
  one, one_metrics = one_epoch(learner, dataset, MeshSpec(), augment)
  four, four_metrics = one_epoch(learner, dataset, MeshSpec(data=devices), augment)
  assert_trees_close(four.params, one.params, atol=1e-5)
  assert_trees_close(four.batch_stats, one.batch_stats, atol=1e-5)
  for k in one_metrics:
    assert abs(one_metrics[k] - four_metrics[k]) < 1e-5, k


def test_the_training_loop_runs_data_times_stage_and_matches_its_reference():
  """A 2 × 2 mesh: two pipeline stages, each data parallel over two devices."""
  dataset = digits()
  learner = local_error_learner('mlp', dataset.image_shape, dropout=0.0, optimizer='sgd',
                                momentum=0.9)
  state, metrics = one_epoch(learner, dataset, MeshSpec(data=2, stage=2, stage_bounds=(2,)))
  # the same epoch on one device: the loop's micro-batches through the delayed schedule
  mesh = MeshSpec().make()
  perm = epoch_permutation(jax.random.split(jax.random.key(1))[0], len(dataset.y_train))
  step_key = jax.random.split(jax.random.key(1))[1]
  make = jax.jit(lambda i: train.batch_maker(dataset, 64, Augment(), replicated(mesh))(
      jnp.asarray(dataset.x_train), jnp.asarray(dataset.y_train), perm, step_key, i)[0])
  batches = jax.tree.map(lambda *b: jnp.stack(b), *[make(i) for i in range(4)])
  example = preprocess(None, dataset.x_train[:2], mean=dataset.mean, std=dataset.std)
  staged = stages_of(learner, (2,))
  ref, ref_metrics = run_reference(staged, staged.split(learner.init(jax.random.key(0), example)),
                                   batches, step_key)
  assert_trees_close(state.params, staged.merge(ref).params, atol=1e-5)
  assert abs(metrics['loss'] - float(ref_metrics['loss']) / 4) < 1e-5


def test_block_parallel_from_the_command_line_config(tmp_path):
  record = experiment.train_and_evaluate(tiny_run_config(stage=2), str(tmp_path / 'run'))
  assert np.isfinite(record['train_loss']) and record['test_accuracy'] is not None


def test_block_parallel_refuses_a_globally_trained_network(tmp_path):
  config = tiny_run_config(stage=2)
  config.loss = 'glob'
  with pytest.raises(ValueError, match='block parallel.*use mesh.data for data parallel'):
    experiment.train_and_evaluate(config, str(tmp_path / 'run'))


def test_balance_minimises_the_slowest_stage():
  assert balance([1, 1, 1, 1], 2) == (2,)
  assert balance([4, 1, 1, 1, 1], 2) == (1,)
  assert balance([1, 2, 3, 4, 5], 3) == (3, 4)   # 6 | 4 | 5
  assert balance([1, 1], 1) == ()
  with pytest.raises(ValueError, match='cannot cut 2 blocks into 3 stages'):
    balance([1, 1], 3)


def test_step_seconds_chains_donated_states_and_keeps_the_callers():
  """Each timed call runs on the state the previous one returned (warm-up + repeats steps), the
  state is donated as in the training loop, and the caller's state stays usable."""
  step = jax.jit(lambda state, inc: (state + inc, state.sum()), donate_argnums=0)
  state = jnp.zeros(4)
  seconds, (last, metric) = step_seconds(step, state, 1.0, repeats=3)
  assert seconds > 0
  np.testing.assert_array_equal(last, 4.0)   # 1 warm-up + 3 timed calls
  assert float(metric) == 12.0               # the last call saw the state after three steps
  np.testing.assert_array_equal(state, 0.0)  # not donated away
  with pytest.raises(ValueError, match='repeats'):
    step_seconds(step, state, 1.0, repeats=0)


def test_bad_meshes_and_bounds_are_named():
  with pytest.raises(ValueError, match='needs 8 devices but 4 exist'):
    MeshSpec(data=2, stage=4).make()
  with pytest.raises(ValueError, match='mesh.data must be >= 1'):
    MeshSpec(data=0)
  with pytest.raises(ValueError, match='must increase strictly'):
    check_bounds((2, 2), 4)
  with pytest.raises(ValueError, match='stage_bounds=.*must name the first block'):
    MeshSpec(stage=3, stage_bounds=(1,))
  config = tiny_run_config(data=4)
  config.batch_size = 30
  with pytest.raises(ValueError, match='batch_size=30 does not split over mesh.data=4'):
    experiment.train_and_evaluate(config, '/tmp/unused')


def test_associated_learning_block_parallel_equals_its_reference():
  """AL's forward path s and target path t travel forward together; each stage trains its
  blocks' f, b, g, h; one stage equals the learner's own step."""
  dataset = digits()
  learner = associated_learner(dataset)
  batches = micro_batches((8, 8, 1), num=3)
  state = learner.init(jax.random.key(1), batches['image'][0])
  staged = stages_of(learner, (1,))
  key = jax.random.key(2)
  ref_states, _ = run_reference(staged, staged.split(state), batches, key)
  states, metrics, _ = run_pipeline(staged, staged.split(state), batches, MeshSpec(stage=2), key)
  assert_trees_close(states, ref_states, atol=1e-6)
  assert {'block1/assoc_loss', 'block2/ae_loss'} <= metrics.keys()
  (whole,), _ = run_reference(stages_of(learner, ()), (state,), batches, key)
  step = jax.jit(learner.train_step)
  for m in range(3):
    state, _ = step(state, jax.tree.map(lambda a: a[m], batches), key)
  assert_trees_close(whole.params, state.params, atol=1e-6)
