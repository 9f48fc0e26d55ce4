"""Many runs in one program (jaxlocal.sweeps, jaxlocal.many_runs): each run of a group equals
the same run trained alone, for every method; sweeps; refusals; outputs and resume."""

import json
import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from jaxlocal import config_lib, experiment, many_runs, sweeps, workdir as workdir_lib
from jaxlocal.config_lib import ConfigError
from jaxlocal.methods import sae as sae_method
from jaxlocal.models import convolution
from jaxlocal.recipes import config_file

# float32: the group's step and the solo step compute the same operations, but XLA may fuse
# and order them differently (a vmapped or unrolled step is another program), so they agree to
# rounding: up to 2e-6 apart after an epoch (an SSL probe's kernel, XLA:CPU at -O0).
RTOL, ATOL = 1e-5, 1e-5
# ... except a bias feeding a BatchNorm (and the running mean that carries it): its gradient is
# rounding noise, which Adam's normalisation turns into steps of the learning rate's size.
NOISE_ATOL = 1e-3


def digits(c, **overrides):
  """``c`` on 128 embedded digits at 8 x 8, one epoch of batch 32 where ``c`` has those fields
  (hebbian's head and ssl's probe keep theirs in their sections)."""
  fields = dict(dataset='digits', image_size=8, train_examples=128, batch_size=32,
                num_epochs=1, eval_batch_size=200, progress_bar=False)
  c.update({**{k: v for k, v in fields.items() if k in c}, **overrides})
  return c


def local_error(**overrides):
  """SGD: Adam would turn the rounding noise of a zero gradient into steps of lr's size."""
  return digits(config_lib.base_config(), **{
      **dict(model='mlp', num_hidden=16, lr_decay_milestones=(), learning_rate=0.05,
             optimizer='sgd', momentum=0.9), **overrides})


def records(folder):
  with open(os.path.join(folder, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f if line.strip()]


def checkpoint(folder):
  """Every array of the last checkpoint of every phase in ``folder``: {path: array}."""
  arrays = {}
  root = os.path.join(folder, 'checkpoints')
  for here, subfolders, _ in os.walk(root):
    if 'default' in subfolders and os.path.basename(here).isdigit():
      epochs = sorted(int(e) for e in os.listdir(os.path.dirname(here)) if e.isdigit())
      if int(os.path.basename(here)) != epochs[-1]:
        continue
      with ocp.StandardCheckpointer() as reader:
        tree = reader.restore(os.path.join(here, 'default'))
      for path, leaf in __import__('jax').tree_util.tree_leaves_with_path(tree):
        arrays[os.path.relpath(here, root) + str(path)] = np.asarray(leaf)
  return arrays


def assert_same_run(group_folder, solo_folder):
  group, solo = records(group_folder), records(solo_folder)
  assert len(group) == len(solo)
  for g, s in zip(group, solo):
    for key, value in s.items():
      if key in ('images_per_sec', 'epoch_seconds') or not isinstance(value, (int, float)):
        continue
      np.testing.assert_allclose(g[key], value, rtol=RTOL, atol=ATOL, err_msg=key)
  g_arrays, s_arrays = checkpoint(group_folder), checkpoint(solo_folder)
  assert g_arrays and g_arrays.keys() == s_arrays.keys()
  for key in s_arrays:
    if s_arrays[key].dtype.kind == 'V':  # typed PRNG keys, if any
      continue
    noise = "'bias'" in key or "'mean'" in key
    np.testing.assert_allclose(g_arrays[key], s_arrays[key], rtol=RTOL,
                               atol=NOISE_ATOL if noise else ATOL, err_msg=key)


def group_equals_solo(tmp_path, config, run=1, vectorize='vmap', seeds='0,3', sweep=''):
  """Trains the group of ``seeds`` (× ``sweep``) and run ``run`` alone; asserts they agree."""
  group = config.copy_and_resolve_references()
  group.runs.update(seeds=seeds, sweep=sweep, vectorize=vectorize)
  experiment.train_and_evaluate(group, str(tmp_path / 'group'))
  target = sweeps.parse_runs(group)[run]
  experiment.train_and_evaluate(sweeps.run_config(group, target), str(tmp_path / 'solo'))
  assert_same_run(str(tmp_path / 'group' / target.folder(run)), str(tmp_path / 'solo'))


@pytest.mark.parametrize('loss', ['predsim', 'glob'])   # pred: predsim's head alone
def test_local_error_mlp_group_run_equals_solo_run(tmp_path, loss):
  group_equals_solo(tmp_path, local_error(loss=loss, dropout=0.1))


def test_tiny_vgg_unrolled_group_equals_solo_with_augmentation(tmp_path):
  config = local_error(model='vgg:4,M', loss='predsim', dim_in_decoder=64)
  config.augment.update(crop_padding=1, cutout=2)
  group_equals_solo(tmp_path, config, vectorize='unroll')


def test_sweep_over_a_float_equals_solo_runs_with_that_value(tmp_path):
  group_equals_solo(tmp_path, local_error(loss='predsim'), run=1, seeds='2',
                    sweep='beta=0.5,0.9;learning_rate=1e-3')


def test_associated_learning_group_equals_solo(tmp_path):
  c = digits(config_lib.associated_config())
  c.associated.width = 16
  group_equals_solo(tmp_path, c)


def test_sae_group_with_a_block_schedule_equals_solo(tmp_path):
  """Nine one-block steps (one compiled branch each) for the group and for the solo run:
  about 80 s on one idle core with the suite's compile settings (over 10 min at XLA's default
  -O3). Unrolled: vmapped, XLA:CPU runs the convolutions as grouped ones, whose rounding Adam
  amplifies (a reconstruction loss 1e-3 apart after an epoch)."""
  c = config_file('sae_mnist', 'labels_100')
  c.sae.update(width=0.125, num_labels=32, schedule='wave')
  c = digits(c, image_size=16, train_examples=96)
  group_equals_solo(tmp_path, c, vectorize='unroll')


def test_sae_vmapped_group_equals_solo_with_sgd(tmp_path, monkeypatch):
  """As above, vmapped (``runs.vectorize=auto`` on a GPU), with SGD in place of the paper's Adam,
  which would turn the grouped convolutions' other rounding into steps of the learning rate's
  size: the vmapped step computes what the solo one does, to float32 rounding."""
  sgd = lambda learning_rate: optax.sgd(0.05, momentum=0.9)
  monkeypatch.setattr(sae_method, 'optax', types.SimpleNamespace(adam=sgd, sgd=optax.sgd))
  c = config_file('sae_mnist', 'labels_100')
  c.sae.update(width=0.125, num_labels=32, schedule='wave')
  c = digits(c, image_size=16, train_examples=96)
  group_equals_solo(tmp_path, c, vectorize='vmap')


def test_ssl_encoder_and_probe_group_equals_solo(tmp_path):
  c = digits(config_file('ssl_hinge_fmnist_to_mnist', 'gll_bp'), image_size=8, train_examples=64)
  c.probe.update(dataset='', num_epochs=1, batch_size=32, blocks=(-1,))
  c.ssl.update(num_epochs=1, batch_size=32)
  group_equals_solo(tmp_path, c)


def test_hebbian_group_equals_solo(tmp_path):
  c = digits(config_lib.hebbian_config())
  c.hebbian.update(hidden=(16,), num_epochs=1, batch_size=32)
  c.head.update(num_epochs=1, batch_size=32)
  group_equals_solo(tmp_path, c)


def test_group_writes_run_folders_and_summary_and_resumes(tmp_path, capsys):
  config = local_error(loss='predsim')
  config.runs.seeds = '0,1'
  experiment.train_and_evaluate(config, str(tmp_path / 'straight'))
  out = capsys.readouterr().out
  assert 'test_accuracy' in out and '±' in out
  config_two = config.copy_and_resolve_references()
  config_two.num_epochs = 2
  experiment.train_and_evaluate(config_two, str(tmp_path / 'straight2'))
  experiment.train_and_evaluate(config_two, str(tmp_path / 'straight'))  # resumes
  folders = sorted(p.name for p in (tmp_path / 'straight').iterdir() if p.name.startswith('run-'))
  assert folders == ['run-0-seed0', 'run-1-seed1']
  with open(tmp_path / 'straight' / folders[1] / 'config.json') as f:
    assert json.load(f)['seed'] == 1
  summary = [json.loads(l) for l in (tmp_path / 'straight' / 'summary.jsonl').read_text().split('\n') if l]
  accuracy = next(s for s in summary if s['metric'] == 'test_accuracy')
  values = [records(str(tmp_path / 'straight' / f))[-1]['test_accuracy'] for f in folders]
  assert accuracy['mean'] == pytest.approx(np.mean(values))
  assert accuracy['std'] == pytest.approx(np.std(values))
  assert accuracy['min'] == min(values) and accuracy['max'] == max(values)
  assert 'resumed 2 runs from epoch 1' in capsys.readouterr().out
  for folder in folders:   # epoch 1, killed, then epoch 2 = two epochs straight
    assert_same_run(str(tmp_path / 'straight' / folder), str(tmp_path / 'straight2' / folder))
  assert workdir_lib.has_trained_epochs(str(tmp_path / 'straight'))


def test_auto_unrolls_only_what_convolves_on_cpu():
  """runs.vectorize=auto: unroll a network with convolutions on XLA:CPU (vmapped, they become
  slow grouped convolutions), vmap one without, and vmap everything on other backends."""
  x, key = jnp.zeros((2, 8, 8, 3)), jax.random.key(0)
  convolves = jax.jit(lambda k, x: convolution.conv(x, jnp.zeros((3, 3, 3, 4))))  # nested
  dense = lambda k, x: x.reshape(2, -1) @ jnp.zeros((192, 4))
  on_cpu = jax.default_backend() == 'cpu'
  assert many_runs.resolve_vectorize('auto', convolves, key, x) == ('unroll' if on_cpu else 'vmap')
  assert many_runs.resolve_vectorize('auto', dense, key, x) == 'vmap'
  for mode in ('vmap', 'unroll'):
    assert many_runs.resolve_vectorize(mode, convolves, key, x) == mode


@pytest.mark.parametrize('runs, message', [
    (dict(seeds='0,0'), 'repeats seed 0'),
    (dict(seeds='0,x'), "'x' is not a number"),
    (dict(sweep='beta=0.9,high'), "'high' is not a number"),
    (dict(sweep='augment=1'), 'share augment'),
    (dict(sweep='seed=1,2'), 'use runs.seeds'),
    (dict(sweep='runs.mode=1'), 'share runs'),
    (dict(sweep='num_hidden=8,16'), 'not a float field'),
    (dict(sweep='nope=1'), 'not a config field'),
    (dict(sweep='beta=0.5,0.9;learning_rate=1e-3', mode='zip'), 'as many values'),
    (dict(sweep='beta'), 'is not <field>=<value>'),
    (dict(seeds='1', mode='diagonal'), 'runs.mode must be one of'),
])
def test_sweep_parsing_errors(runs, message):
  config = local_error()
  config.runs.update(runs)
  with pytest.raises(ConfigError, match=message):
    sweeps.parse_runs(config)


def test_a_sweep_product_and_zip():
  config = local_error()
  config.runs.update(seeds='0,1', sweep='beta=0.5,0.9;learning_rate=1e-3,2e-3')
  assert len(sweeps.parse_runs(config)) == 8
  config.runs.mode = 'zip'
  runs = sweeps.parse_runs(config)
  assert [r.folder(i) for i, r in enumerate(runs)][:2] == [
      'run-0-seed0-beta0.5-learning_rate0.001', 'run-1-seed0-beta0.9-learning_rate0.002']


@pytest.mark.parametrize('overrides, message', [
    (dict(mesh=dict(data=2)), 'one device'),
    (dict(mesh=dict(distributed=True)), 'one process'),
    (dict(runs=dict(sweep='feat_mult=1,2'), model='vgg:4,M', dim_in_decoder=64),
     'cannot take feat_mult'),
])
def test_refusals_are_one_line_config_errors(tmp_path, overrides, message):
  config = local_error()
  config.runs.seeds = '0,1'
  config.update(overrides)
  with pytest.raises(ConfigError, match=message) as error:
    experiment.train_and_evaluate(config, str(tmp_path))
  assert '\n' not in str(error.value)


def test_random_block_schedule_is_refused(tmp_path):
  c = digits(config_file('ssl_hinge_fmnist_to_mnist', 'rll_bp'))
  c.probe.dataset = ''
  c.ssl.batch_size = 32
  c.runs.seeds = '0,1'
  with pytest.raises(ConfigError, match='at random'):
    experiment.train_and_evaluate(c, str(tmp_path))
