"""The training loop end to end: learning, exact resume, NaN handling and bad-input errors."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlocal import experiment
from jaxlocal import data as data_lib
from jaxlocal import determinism
from jaxlocal import methods
from jaxlocal import train
from jaxlocal.checkpoint import CheckpointError, CheckpointMismatchError, Checkpointer
from jaxlocal.config_lib import base_config


def tiny_config(**overrides):
  """predsim on the digits with a two-conv VGG: a few seconds per epoch on CPU."""
  c = base_config()
  c.dataset = 'digits'
  c.image_size = 16
  c.model = 'vgg:16,M,32,M'
  c.num_hidden = 64
  c.dim_in_decoder = 256
  c.dropout = 0.05
  c.augment.crop_padding = 1
  c.augment.cutout = 2
  c.batch_size = 32
  c.num_epochs = 2
  c.learning_rate = 2e-3
  c.lr_decay_milestones = (1,)
  c.progress_bar = False
  c.update(overrides)
  return c


def restore_params(workdir, config):
  """The parameters of the last checkpoint in ``workdir``."""
  dataset = data_lib.load_dataset(config.dataset, train_examples=config.train_examples,
                                  image_size=config.image_size)
  steps = data_lib.steps_per_epoch(len(dataset.x_train), config.batch_size)
  learner = methods.get_method(config.method).build(config, dataset, steps)
  like = jax.jit(learner.init)(jax.random.key(0), jnp.zeros((2, *dataset.image_shape)))
  checkpointer = Checkpointer(os.path.join(workdir, 'checkpoints'))
  state = checkpointer.restore(checkpointer.latest_epoch(), like)
  checkpointer.close()
  return state


def test_digits_run_learns_and_writes_metrics(tmp_path, capsys):
  final = experiment.train_and_evaluate(tiny_config(), str(tmp_path))
  assert final['test_accuracy'] > 0.8  # chance is 0.1
  records = [json.loads(l) for l in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert [r['epoch'] for r in records] == [1, 2]
  for key in ('train_loss', 'test_accuracy', 'images_per_sec', 'test/conv1/accuracy',
              'test/fc1/accuracy', 'train/conv2/sim_loss', 'train/conv2/pred_loss'):
    assert key in records[-1], key
  last = records[-1]  # both splits: the summed local loss and the output's cross-entropy
  assert last['train_loss'] == last['train/loss'] and last['test_loss'] == last['test/loss']
  assert last['train_xent'] == last['train/output/xent']
  assert last['test_xent'] == last['test/output/xent']
  assert (tmp_path / 'learning_curves.png').stat().st_size > 0
  assert (tmp_path / 'config.json').exists()
  last_line = capsys.readouterr().out.strip().splitlines()[-1]
  assert last_line.startswith('final: epoch 2/2 test_accuracy=')


def test_frozen_hidden_baseline_trains_only_the_output_layer():
  config = tiny_config(freeze_hidden=True)
  dataset = data_lib.load_dataset('digits', image_size=16)
  learner = methods.get_method('local_error').build(config, dataset, steps_per_epoch=10)
  images = data_lib.preprocess(None, dataset.x_train[:32], mean=dataset.mean, std=dataset.std)
  batch = {'image': images, 'label': jnp.asarray(dataset.y_train[:32])}
  state = learner.init(jax.random.key(0), images)
  new, metrics = jax.jit(learner.train_step)(state, batch, jax.random.key(1))
  assert set(metrics) == {'loss', 'accuracy', 'output/loss', 'output/xent', 'output/accuracy'}
  for before, after in zip(state.params[:-1], new.params[:-1]):
    jax.tree.map(np.testing.assert_array_equal, after, before)
  assert not np.allclose(new.params[-1]['forward']['Dense_0']['linear']['kernel'],
                         state.params[-1]['forward']['Dense_0']['linear']['kernel'])


def test_frozen_hidden_blocks_have_no_dropout():
  """The frozen features the output layer trains on are the same whatever the dropout key (with
  dropout a random net's train-mode features are unrelated to its test-mode ones)."""
  config = tiny_config(freeze_hidden=True, dropout=0.3)
  dataset = data_lib.load_dataset('digits', image_size=16)
  learner = methods.get_method('local_error').build(config, dataset, steps_per_epoch=10)
  images = data_lib.preprocess(None, dataset.x_train[:32], mean=dataset.mean, std=dataset.std)
  batch = {'image': images, 'label': jnp.asarray(dataset.y_train[:32])}
  state = learner.init(jax.random.key(0), images)
  step = jax.jit(learner.train_step)
  a, _ = step(state, batch, jax.random.key(1))
  b, _ = step(state, batch, jax.random.key(2))
  jax.tree.map(np.testing.assert_array_equal, a.params, b.params)


def test_resume_is_exact(tmp_path):
  """Bitwise, under the deterministic switch as jaxlocal.main sets it (conftest set the flags
  before the backend started; on a GPU without them XLA's autotuning and atomics make the runs
  differ by ~1e-7, and require() raises instead)."""
  config = lambda epochs: tiny_config(num_epochs=epochs, deterministic=True)
  determinism.require(config(2).deterministic)  # what jaxlocal.main does first
  full, split = tmp_path / 'full', tmp_path / 'split'
  experiment.train_and_evaluate(config(2), str(full))
  experiment.train_and_evaluate(config(1), str(split))
  experiment.train_and_evaluate(config(2), str(split))
  a, b = restore_params(str(full), tiny_config()), restore_params(str(split), tiny_config())
  assert int(a.step) == int(b.step) > 0
  for x, y in zip(jax.tree.leaves((a.params, a.batch_stats, a.opt_state)),
                  jax.tree.leaves((b.params, b.batch_stats, b.opt_state))):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  records = [json.loads(l) for l in (split / 'metrics.jsonl').read_text().splitlines()]
  assert [r['epoch'] for r in records] == [1, 2]


def test_mnist_mlp_predsim_learns(tmp_path, shared_data):
  config = tiny_config(dataset='mnist', data_dir=str(shared_data), image_size=0, model='mlp',
                       num_layers=2, num_hidden=256, train_examples=10000, num_epochs=1,
                       batch_size=64, learning_rate=1e-3, eval_batch_size=2000)
  config.augment.cutout = 0
  final = experiment.train_and_evaluate(config, str(tmp_path))
  assert final['test_accuracy'] > 0.9


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path):
  config = tiny_config(num_epochs=1)
  experiment.train_and_evaluate(config, str(tmp_path))
  saved = restore_params(str(tmp_path), config)

  dataset = data_lib.load_dataset('digits', image_size=config.image_size)
  steps = data_lib.steps_per_epoch(len(dataset.x_train), config.batch_size)
  learner = methods.get_method('local_error').build(config, dataset, steps)
  poisoned_step = learner.train_step

  def train_step(state, batch, rng):
    state, metrics = poisoned_step(state, batch, rng)
    metrics['loss'] = jnp.where(state.step > steps + 3, jnp.nan, metrics['loss'])
    return state, metrics

  with pytest.raises(train.TrainingDivergedError, match='epoch 2.*last good checkpoint'):
    train.fit(learner._replace(train_step=train_step), dataset, workdir=str(tmp_path),
              num_epochs=2, batch_size=config.batch_size, seed=config.seed, progress_bar=False)
  checkpointer = Checkpointer(str(tmp_path / 'checkpoints'))
  assert checkpointer.latest_epoch() == 1
  checkpointer.close()
  after = restore_params(str(tmp_path), config)
  for x, y in zip(jax.tree.leaves(saved.params), jax.tree.leaves(after.params)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  records = (tmp_path / 'metrics.jsonl').read_text().splitlines()
  assert len(records) == 1


@pytest.mark.usefixtures('collect_abandoned_restores')
def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
  experiment.train_and_evaluate(tiny_config(num_epochs=1), str(tmp_path))
  for root, _, files in os.walk(tmp_path / 'checkpoints' / '1'):
    for name in files:
      with open(os.path.join(root, name), 'wb') as f:
        f.write(b'garbage')
  with pytest.raises(CheckpointError, match='checkpoint of epoch 1 .* is corrupt') as error:
    experiment.train_and_evaluate(tiny_config(num_epochs=2), str(tmp_path))
  assert not isinstance(error.value, CheckpointMismatchError)
  assert 'train in a new workdir' in str(error.value)  # no earlier epoch to fall back to


@pytest.mark.usefixtures('collect_abandoned_restores')
def test_checkpoint_of_another_model_is_a_clear_error(tmp_path):
  experiment.train_and_evaluate(tiny_config(num_epochs=1), str(tmp_path))
  with pytest.raises(CheckpointMismatchError, match='holds another network') as error:
    experiment.train_and_evaluate(tiny_config(num_epochs=2, num_hidden=48), str(tmp_path),
                             allow_config_change=True)
  assert 'delete' not in str(error.value)


@pytest.mark.parametrize('overrides, message', [
    (dict(num_epochs=-1), 'num_epochs must be positive'),
    (dict(batch_size=0), 'batch_size must be positive'),
    (dict(batch_size=5000), 'exceeds the 1437 training examples'),
    (dict(loss='predsimm'), "unknown loss 'predsimm'"),
    (dict(model='vgg12'), "unknown VGG architecture 'vgg12'"),
    (dict(dropout=1.5), 'dropout must lie in'),
    (dict(beta=2.0), 'beta must lie in'),
    (dict(method='nope'), "unknown method 'nope'"),
    (dict(optimizer='adagrad'), "unknown optimizer 'adagrad'"),
    (dict(nonlin='tanh'), "unknown nonlinearity 'tanh'"),
    (dict(train_examples=-3), 'train_examples must be >= 0'),
    (dict(train_examples=99999), '99999'),
])
def test_impossible_config_values(tmp_path, overrides, message):
  with pytest.raises(ValueError, match=message):
    experiment.train_and_evaluate(tiny_config(**overrides), str(tmp_path))


def test_unknown_dataset_names_every_place_looked(tmp_path, monkeypatch):
  monkeypatch.delenv('JAXLOCAL_DATA_DIR', raising=False)
  with pytest.raises(data_lib.DatasetNotFoundError) as error:
    experiment.train_and_evaluate(tiny_config(dataset='imagenot', data_dir=str(tmp_path)),
                             str(tmp_path / 'w'))
  assert 'imagenot.npz' in str(error.value) and 'data_dir' in str(error.value)


def test_missing_data_folder(tmp_path):
  with pytest.raises(data_lib.DatasetNotFoundError, match='does not exist'):
    experiment.train_and_evaluate(tiny_config(dataset='mnist', data_dir=str(tmp_path / 'nowhere')),
                             str(tmp_path / 'w'))


def test_labels_out_of_range(tmp_path):
  x = np.zeros((8, 28, 28, 1), np.uint8)
  np.savez(tmp_path / 'mnist.npz', x_train=x, y_train=np.full(8, 12, np.uint8), x_test=x,
           y_test=np.zeros(8, np.uint8))
  with pytest.raises(data_lib.DatasetFormatError, match='label'):
    experiment.train_and_evaluate(tiny_config(dataset='mnist', data_dir=str(tmp_path), batch_size=4),
                             str(tmp_path / 'w'))
