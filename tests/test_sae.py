"""Semi-supervised SAE training: unlabelled examples, the labelled split in the checkpoint, the
sequential and wave schedules, the mean prediction and the parameter counts of Table I."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlocal import data as data_lib
from jaxlocal.checkpoint import Checkpointer
from jaxlocal.methods import sae
from jaxlocal.models.sae import SAEHead
from jaxlocal.objectives.base import cross_entropy
from jaxlocal.recipes import config_file
from jaxlocal.semi_supervised import labelled_split


def tiny_dataset(n=40, size=16, classes=4):
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8)
  y = (np.arange(n) % classes).astype(np.int32)
  return data_lib.Dataset('tiny', x, y, x, y, classes, np.full(1, 0.5, np.float32),
                          np.full(1, 0.25, np.float32), 'synthetic')


def tiny_config(schedule='wave', num_labels=8, num_epochs=18):
  c = config_file('sae_mnist', 'labels_100')
  c.sae.update(width=0.125, num_labels=num_labels, schedule=schedule)
  c.num_epochs = num_epochs
  return c


def batch_of(dataset, count=8):
  images = data_lib.preprocess(None, dataset.x_train[:count], mean=dataset.mean, std=dataset.std)
  return {'image': images, 'label': jnp.asarray(dataset.y_train[:count]),
          'index': jnp.arange(count)}


def test_unlabelled_examples_contribute_no_cross_entropy_gradient():
  logits = jax.random.normal(jax.random.key(0), (4, 3))
  batch = {'label': jnp.asarray([2, -1, 0, -1])}
  grad = jax.grad(cross_entropy)(logits, batch)
  assert np.all(np.asarray(grad[1]) == 0) and np.all(np.asarray(grad[3]) == 0)
  assert np.abs(grad[0]).sum() > 0 and np.abs(grad[2]).sum() > 0
  labelled_only = {'label': jnp.asarray([2, 0])}
  np.testing.assert_allclose(cross_entropy(logits, batch),
                             cross_entropy(logits[jnp.asarray([0, 2])], labelled_only), rtol=1e-6)


def test_labelled_split_is_balanced_seeded_and_sized():
  labels = np.arange(200) % 10
  split = labelled_split(jax.random.key(3), labels, 50)
  assert int(split.sum()) == 50
  assert np.all(np.bincount(labels[np.asarray(split)], minlength=10) == 5)
  assert np.array_equal(split, labelled_split(jax.random.key(3), labels, 50))
  assert not np.array_equal(split, labelled_split(jax.random.key(4), labels, 50))
  with pytest.raises(ValueError, match='num_labels'):
    labelled_split(jax.random.key(3), labels, 201)


def test_the_split_lives_in_the_checkpoint_and_follows_the_seed(tmp_path):
  dataset = tiny_dataset()
  learner = sae.build(tiny_config(), dataset, steps_per_epoch=1)
  x = batch_of(dataset)['image']
  state = learner.init(jax.random.key(1), x)
  other = learner.init(jax.random.key(2), x)
  assert not np.array_equal(state.extras['labelled'], other.extras['labelled'])
  assert int(state.extras['labelled'].sum()) == 8
  checkpointer = Checkpointer(str(tmp_path / 'ckpt'))
  checkpointer.save(1, state)
  restored = checkpointer.restore(1, other)  # a resumed run restores into a fresh state
  checkpointer.close()
  assert np.array_equal(restored.extras['labelled'], state.extras['labelled'])


def changed(before, after, i):
  leaves = lambda s: jax.tree.leaves((s.params[i], s.opt_state[i], s.batch_stats[i]))
  return any(not np.array_equal(a, b) for a, b in zip(leaves(before), leaves(after)))


@pytest.mark.parametrize('schedule', ['wave', 'sequential'])
def test_only_the_active_block_changes_and_wave_visits_each_once_per_cycle(schedule):
  dataset = tiny_dataset()
  learner = sae.build(tiny_config(schedule), dataset, steps_per_epoch=1)
  batch = batch_of(dataset)
  state = learner.init(jax.random.key(0), batch['image'])
  blocks = len(state.params)
  step = jax.jit(learner.train_step)
  changes = []
  for t in range(blocks):
    new, _ = step(state, batch, jax.random.key(t))
    changes.append([i for i in range(blocks) if changed(state, new, i)])
    state = new
  if schedule == 'wave':  # one epoch (here one step) per block, in turn
    assert changes == [[i] for i in range(blocks)]
  else:  # 18 epochs over 9 blocks: two epochs each
    assert changes == [[i // 2] for i in range(blocks)]


def test_mean_prediction_is_the_average_of_the_heads_softmax():
  logits = [jax.random.normal(jax.random.key(i), (5, 4)) for i in range(3)]
  want = sum(jax.nn.softmax(l) for l in logits) / 3
  np.testing.assert_allclose(sae.mean_prediction(logits), want, rtol=1e-6)

  dataset = tiny_dataset()
  learner = sae.build(tiny_config(), dataset, steps_per_epoch=1)
  batch = {**batch_of(dataset, 12), 'mask': jnp.ones(12)}
  state = learner.init(jax.random.key(0), batch['image'])
  metrics = jax.jit(learner.eval_step)(state, batch)
  # the heads by hand: stage i's input and output, then its SAE head
  features = learner.features(state, batch['image'])
  head = SAEHead(4, 'C')
  heads = [head.apply({'params': p['aux']}, *h)[1] for p, h in zip(state.params, features[:-1])]
  mean = np.asarray(sae.mean_prediction(heads))
  accuracy = np.mean(mean.argmax(-1) == np.asarray(batch['label']))
  np.testing.assert_allclose(metrics['predict_mean/accuracy'], accuracy, rtol=1e-6)
  assert metrics['accuracy'] == metrics['predict_mean/accuracy']
  assert metrics['predict_sae/accuracy'] == metrics['stage8/accuracy']
  assert metrics['predict_vgg/accuracy'] == metrics['output/accuracy']


def type_c_formula(cin, c, h, classes=10):
  """Parameters of a type-C SAE stage on an h×h input: stage conv + BN, encoder conv,
  decoder conv, reconstruction conv, FC 512 on the (h/2)²·c/2 bottleneck, FC classes."""
  conv = lambda i, o: 9 * i * o + o
  return (conv(cin, c) + 2 * c + conv(c, c // 2) + conv(c // 2, c) + conv(c, cin)
          + (h // 2) ** 2 * (c // 2) * 512 + 512 + 512 * classes + classes)


def test_parameter_counts_follow_the_formula_and_table_one(capsys):
  config = config_file('sae_cifar10', 'base')
  counts = sae.parameter_counts(config, (32, 32, 3), 10)
  stages = [(3, 64, 32), (64, 64, 32), (64, 128, 16), (128, 128, 16), (128, 256, 8),
            (256, 256, 8), (256, 512, 4), (512, 512, 4)]
  assert [counts[f'stage{i + 1}'] for i in range(8)] == [type_c_formula(*s) for s in stages]
  # Table I (millions): stages 1–6 and the VGG agree; see the README for stages 7 and 8
  paper = [4.24, 4.31, 2.40, 2.55, 2.24, 2.83]
  assert [round(counts[f'stage{i + 1}'] / 1e6, 2) for i in range(6)] == paper
  assert round(counts['vgg'] / 1e6, 2) == 13.09
  sae.print_parameter_counts(config, (32, 32, 3), 10)
  assert 'stage1: 4.24M' in capsys.readouterr().out


@pytest.mark.parametrize('change, match', [
    (lambda c: c.sae.update(type='D'), 'sae.type'),
    (lambda c: c.sae.update(schedule='sequential'), 'multiple of 9'),
    (lambda c: c.sae.update(stage_learning_rates=(1e-3,)), 'stage_learning_rates'),
    (lambda c: c.sae.update(num_labels=-1), 'num_labels'),
])
def test_bad_configs_are_named(change, match):
  config = tiny_config(num_epochs=10)
  change(config)
  with pytest.raises(ValueError, match=match):
    sae.build(config, tiny_dataset(), steps_per_epoch=1)


def test_a_stage_too_small_to_pool_is_named():
  x, h = jnp.zeros((2, 1, 1, 4)), jnp.zeros((2, 1, 1, 8))
  with pytest.raises(ValueError, match='too small'):
    SAEHead(3).init(jax.random.key(0), x, h)
