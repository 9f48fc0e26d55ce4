"""Every config loads and builds, with the parameter counts the reference README reports."""

import importlib.util
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO
from jaxlocal import data as data_lib
from jaxlocal import methods
from jaxlocal.blocks import init_blocks, param_count
from jaxlocal.data import DATASETS
from jaxlocal.methods.local_error import network_blocks
from jaxlocal.config_lib import MOVED_FIELDS, ConfigError, check_moved_fields
from jaxlocal.recipes import config_file

CONFIG_FILES = sorted(p.stem for p in (REPO / 'configs').glob('*.py'))
VARIANTS = {'hebbian_mnist': ('quick', 'sgd'), 'hebbian_cifar10': ('quick', 'sgd'), 'al_mnist': ('cnn', 'mlp_bp', 'cnn_bp'),
            'al_cifar10': ('mlp', 'mlp_bp', 'cnn_bp', 'vgg', 'vgg_bp', 'resnet20', 'resnet20_bp'),
            'al_cifar100': ('mlp', 'vgg', 'cnn_bp'),
            'ssl_cifar': ('e2e_rf', 'e2e_dtp', 'e2e_dtp_stride', 'rll_urf_neg5', 'simclr_e2e_bp',
                          'gll_rf'),
            'ssl_stl10': ('gll_urf', 'rll_rf_neg5'),
            'ssl_hinge_fmnist_to_mnist': ('e2e_dtp', 'rll_rf', 'gll_urf_neg5'),
            'ssl_hinge_mnist_to_fmnist': ('simclr_e2e_bp',),
            'sae_cifar10': ('type_a', 'type_b', 'sequential', 'full', 'labels_20000'),
            'sae_cifar100': ('full',), 'sae_mnist': ('labels_100', 'labels_1000_sequential'),
            'sae_fashion_mnist': ('full',)}

LOCAL_ERROR_FILES = ('cifar10', 'cifar100', 'fashion_mnist', 'kmnist', 'mnist', 'stl10', 'svhn')


def config_module(name):
  spec = importlib.util.spec_from_file_location(name, REPO / 'configs' / f'{name}.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_config_file(name, arg=None):
  module = config_module(name)
  return module.get_config() if arg is None else module.get_config(arg)


def forward_params(config, num_classes=10):
  shape = DATASETS[config.dataset].image_shape
  blocks = network_blocks(config, num_classes=num_classes, image_shape=shape)
  params, _ = jax.eval_shape(lambda: init_blocks(blocks, jax.random.key(0), jnp.zeros((2, *shape))))
  return param_count([p['forward'] for p in params])


@pytest.mark.parametrize('dataset, row, classes, millions', [
    ('cifar10', 'vgg8b', 10, 8.9), ('mnist', 'vgg8b', 10, 7.3), ('cifar10', 'vgg11b', 10, 11.6),
    ('cifar10', 'vgg11b_2x', 10, 42.0), ('cifar10', 'vgg11b_3x', 10, 91.3),
    ('mnist', 'mlp', 10, 2.9), ('cifar10', 'mlp', 10, 27.3),
    ('fashion_mnist', 'vgg8b_2x', 10, 28.2), ('cifar100', 'vgg8b', 100, 9.0),
])
def test_parameter_counts_match_the_reference(dataset, row, classes, millions):
  assert round(forward_params(config_file(dataset, row), classes) / 1e6, 1) == millions


@pytest.mark.parametrize('dataset', LOCAL_ERROR_FILES)
def test_every_row_of_every_config_file_builds(dataset):
  for row in config_module(dataset).ROWS:
    for loss in ('pred', 'sim', 'predsim', 'glob', 'glob+sim'):
      config = load_config_file(dataset, row)
      config.loss = loss
      build = lambda: network_blocks(config, num_classes=10,
                                     image_shape=DATASETS[dataset].image_shape)
      if config.bpf and loss.startswith('glob'):
        with pytest.raises(ValueError, match='no backprop-free form'):
          build()
      else:
        build()
  with pytest.raises(ValueError, match='unknown row'):
    load_config_file(dataset, 'vgg99')


def _every_config():
  for name in CONFIG_FILES:
    yield name, None
    rows = config_module(name).ROWS if name in LOCAL_ERROR_FILES else ()
    for arg in (*rows, *VARIANTS.get(name, ())):
      yield name, arg


def synthetic(config, examples=128) -> data_lib.Dataset:
  """Random uint8 images of the config's dataset shape (resized to its image_size)."""
  info = DATASETS[config.dataset.split('-')[0]]
  rng = np.random.default_rng(0)
  h, w, c = info.image_shape
  size = config.get('image_size', 0)
  x = rng.integers(0, 256, (examples, size or h, size or w, c), dtype=np.uint8)
  y = (np.arange(examples) % info.num_classes).astype(np.int32)
  channels = info.image_shape[-1]
  return data_lib.Dataset(config.dataset, x, y, x, y, info.num_classes,
                          np.full(channels, 0.5, np.float32), np.full(channels, 0.25, np.float32),
                          'synthetic')


def first_learner_and_batch(name, arg):
  config = load_config_file(name, arg)
  if config.method == 'ssl':
    config.probe.dataset = ''  # the transfer dataset is not needed to trace the encoder
    config.ssl.batch_size = 64
  if config.method == 'sae' and config.sae.num_labels:
    config.sae.num_labels = 8  # of the synthetic dataset's 128 examples
  dataset = synthetic(config)
  method = methods.get_method(config.method)
  learner = method.phases(config, dataset)[0].learner
  images = data_lib.preprocess(None, dataset.x_train[:2], mean=dataset.mean, std=dataset.std)
  return learner, {'image': images, 'label': jnp.asarray(dataset.y_train[:2]),
                   'index': jnp.arange(2)}


@pytest.mark.parametrize('name, arg', list(_every_config()))
def test_every_config_traces_a_training_step_on_data_of_its_shape(name, arg):
  """Every row and variant: init and one train step traced abstractly (shapes, dtypes, the
  whole step's structure) without compiling; the wide VGG rows would take minutes to compile."""
  learner, batch = first_learner_and_batch(name, arg)
  state = jax.eval_shape(learner.init, jax.random.key(0), batch['image'])
  new_state, metrics = jax.eval_shape(learner.train_step, state, batch, jax.random.key(1))
  assert jax.tree.structure(new_state) == jax.tree.structure(state)
  assert all(a.shape == b.shape for a, b in zip(jax.tree.leaves(new_state),
                                                jax.tree.leaves(state)))
  assert metrics and all(m.shape == () for m in metrics.values())


@pytest.mark.parametrize('name', CONFIG_FILES)
def test_every_config_file_trains_one_step(name):
  """Each file's default: one real, compiled step on random images of its dataset's shape."""
  learner, batch = first_learner_and_batch(name, None)
  state = learner.init(jax.random.key(0), batch['image'])
  # one-block schedules: the first block's step, which the training loop runs first
  step = learner.block_steps[0] if learner.block_steps else learner.train_step
  state, metrics = jax.jit(step)(state, batch, jax.random.key(1))
  assert int(state.step) == 1
  assert all(np.isfinite(float(v)) for v in metrics.values())


def test_design_card_config_is_the_paper_recipe():
  c = load_config_file('predsim_vgg8b')
  assert (c.dataset, c.model, c.loss, c.beta, c.dropout, c.dim_in_decoder) == (
      'cifar10', 'vgg8b', 'predsim', 0.99, 0.2, 2048)
  assert (c.learning_rate, c.batch_size, c.num_epochs) == (5e-4, 128, 400)
  assert tuple(c.lr_decay_milestones) == (200, 300, 350, 375) and c.lr_decay_factor == 0.25
  assert (c.augment.crop_padding, c.augment.flip) == (4, True)


def test_cli_runs_quickstart_with_overrides(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'jaxlocal.main', '--config=configs/quickstart.py',
       '--config.num_epochs=1', '--config.train_examples=512', '--config.progress_bar=False',
       f'--workdir={tmp_path}'], cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip().splitlines()[-1].startswith('final: epoch 1/1 test_accuracy=')
  record = json.loads((tmp_path / 'metrics.jsonl').read_text().splitlines()[-1])
  assert record['epoch'] == 1 and 'test/conv1/accuracy' in record
  assert json.loads((tmp_path / 'config.json').read_text())['train_examples'] == 512


@pytest.mark.parametrize('name', [n for n in CONFIG_FILES if n not in ('quickstart', 'predsim_vgg8b')])
def test_a_misspelt_field_in_a_config_files_table_is_refused(name):
  """Each file's tables (SHARED, ROWS, BACKPROP, EXPERIMENT) go through one check: a field the
  method's config lacks is a ConfigError naming the file, the table and the field."""
  module = config_module(name)
  table = next(t for t in ('SHARED', 'EXPERIMENT') if hasattr(module, t))
  getattr(module, table)['augment'] = {**getattr(module, table).get('augment', {}), 'cutuot': 3}
  with pytest.raises(ConfigError, match=rf"configs/{name}.py {table}: unknown config field "
                                        r"'augment.cutuot'"):
    module.get_config()


def test_a_misspelt_field_in_a_row_is_refused_naming_the_row():
  module = config_module('mnist')
  module.ROWS['vgg8b'] = dict(module.ROWS['vgg8b'], dropuot=0.3)
  with pytest.raises(ConfigError, match=r"configs/mnist.py ROWS\['vgg8b'\]: unknown config field "
                                        r"'dropuot'"):
    module.get_config('vgg8b')


@pytest.mark.parametrize('method, field', [(m, f) for m in MOVED_FIELDS for f in MOVED_FIELDS[m]])
def test_a_moved_field_set_from_python_is_a_config_error_naming_its_place(method, field):
  config = config_file('hebbian_mnist' if method == 'hebbian' else 'ssl_cifar')
  assert field not in config  # the top-level field is gone from the method's config
  config[field] = 1
  with pytest.raises(ConfigError, match=rf"'{MOVED_FIELDS[method][field][0]}'") as error:
    check_moved_fields(config)
  assert '\n' not in str(error.value)


@pytest.mark.parametrize('args, place', [
    (['--config=configs/hebbian_mnist.py:quick', '--config.num_epochs=5'], 'head.num_epochs'),
    (['--config=configs/hebbian_mnist.py', '--config.learning_rate=0.1'], 'head.lr_values'),
    (['--config=configs/ssl_cifar.py:gll_bp', '--config.batch_size=8'], 'probe.batch_size'),
])
def test_a_moved_field_on_the_command_line_is_one_line_and_exit_2(tmp_path, args, place):
  result = subprocess.run([sys.executable, '-m', 'jaxlocal.main', *args,
                           f'--workdir={tmp_path}'], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: ') and f'--config.{place}' in lines[0]
  assert not (tmp_path / 'config.json').exists()
