"""Krotov & Hopfield end to end: phases, resume, stacking, baselines, guards, configs."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from jaxlocal import experiment
from jaxlocal.tools.runs import restored_run
from jaxlocal import train
from jaxlocal.config_lib import hebbian_config
from jaxlocal.data import load_dataset
from jaxlocal.methods.hebbian import layer_features
from jaxlocal.rules.hebbian import CollapseError, init_weights
from test_configs import load_config_file


def tiny(**hebbian):
  c = hebbian_config()
  c.dataset = 'digits'
  c.hebbian.update({'hidden': (64,), 'num_epochs': 4, 'batch_size': 50, 'lr': 0.04, **hebbian})
  c.head.update(lr_values=(3e-3, 1e-3), lr_boundaries=(8,))
  c.head.update(num_epochs=10, batch_size=50)
  c.progress_bar = False
  return c


def records(workdir):
  return [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]


def test_hebbian_then_head_learns_digits(tmp_path):
  final = experiment.train_and_evaluate(tiny(), str(tmp_path))
  assert final['test_accuracy'] > 0.8  # chance 0.1
  phases = [(r['phase'], r['epoch']) for r in records(tmp_path)]
  assert phases == [('hebbian1', e) for e in range(1, 5)] + [('head', e) for e in range(1, 11)]
  deviation = [r['test/sphere_deviation'] for r in records(tmp_path) if r['phase'] == 'hebbian1']
  assert deviation[-1] < deviation[0]
  for figure in ('receptive_fields.png', 'hebbian_convergence.png', 'learning_curves_head.png'):
    assert (tmp_path / figure).stat().st_size > 0
  run = restored_run(str(tmp_path))  # a two-phase run restores through its phases
  assert list(run.states) == ['hebbian1', 'head']
  assert int(run.states['hebbian1'].step) == 4 * 28 and int(run.state.step) == 10 * 28


def test_resume_continues_the_head_without_retraining_the_rule(tmp_path):
  config = tiny()
  config.head.num_epochs = 2
  experiment.train_and_evaluate(config, str(tmp_path))
  config.head.num_epochs = 4
  final = experiment.train_and_evaluate(config, str(tmp_path))
  phases = [(r['phase'], r['epoch']) for r in records(tmp_path)]
  assert phases == [('hebbian1', e) for e in range(1, 5)] + [('head', e) for e in range(1, 5)]
  assert final['epoch'] == 4


def test_stacked_layers_and_exact_rule_run(tmp_path):
  config = tiny(hidden=(48, 32), rule='exact', w_inh=0.5, h_star=0.1, num_epochs=2)
  config.head.num_epochs = 5
  final = experiment.train_and_evaluate(config, str(tmp_path))
  assert {r['phase'] for r in records(tmp_path)} == {'hebbian1', 'hebbian2', 'head'}
  assert final['test_accuracy'] > 0.3  # chance 0.1; two 2-epoch layers and 5 head epochs


def test_end_to_end_baseline_trains(tmp_path):
  config = tiny(backprop=True)
  config.head.update(power=1.0, m=4.0, temperature=1.0)
  config.head.num_epochs = 5
  final = experiment.train_and_evaluate(config, str(tmp_path))
  assert final['test_accuracy'] > 0.8


def test_collapsed_weights_stop_with_a_clear_error(tmp_path):
  with pytest.raises(CollapseError, match='collapsed to ~0.*epoch 1 \\[hebbian1\\]'):
    experiment.train_and_evaluate(tiny(init_std=1e-30), str(tmp_path))
  assert not list((tmp_path / 'checkpoints' / 'hebbian1').glob('1'))


def raw_digits():
  dataset = load_dataset('digits')
  return dataclasses.replace(dataset, mean=np.zeros(1, np.float32), std=np.ones(1, np.float32))


def test_dot_and_p_current_codes_agree_for_p_2():
  dataset = raw_digits()
  W = init_weights(jax.random.key(0), 16, 64)
  dot = layer_features(W, dataset, current='dot', p=2.0, n=3.0, unit_norm=False)
  p2 = layer_features(W, dataset, current='p', p=2.0, n=3.0, unit_norm=False)
  np.testing.assert_allclose(dot.x_train, p2.x_train, rtol=1e-5, atol=1e-6)
  p4 = layer_features(W, dataset, current='p', p=4.0, n=3.0, unit_norm=False)
  assert not np.allclose(dot.x_train, p4.x_train)
  assert dot.x_train.shape == (len(dataset.x_train), 1, 1, 16)
  np.testing.assert_allclose(dot.x_train.max(axis=-1).mean(), 1.0, rtol=1e-5)


def test_example_code_scale_makes_the_winner_1_and_ignores_input_contrast():
  dataset = raw_digits()
  W = init_weights(jax.random.key(1), 32, 64)
  codes = layer_features(W, dataset, current='dot', p=4.0, n=4.5, unit_norm=False,
                         code_scale='example')
  np.testing.assert_allclose(codes.x_test.max(axis=-1), 1.0, rtol=1e-6)
  brighter = dataclasses.replace(dataset, std=dataset.std / 3)  # v -> 3 v
  same = layer_features(W, brighter, current='dot', p=4.0, n=4.5, unit_norm=False,
                        code_scale='example')
  np.testing.assert_allclose(same.x_test, codes.x_test, rtol=1e-4, atol=1e-6)
  with pytest.raises(ValueError, match="unknown code_scale 'max'"):
    layer_features(W, dataset, current='dot', p=4.0, n=4.5, unit_norm=False, code_scale='max')


@pytest.mark.parametrize('field, value, message', [
    ('rule', 'oja', "unknown hebbian.rule 'oja'"),
    ('p', 1.0, 'need hebbian.p >= 2'),
    ('hidden', (), 'positive layer widths'),
])
def test_bad_hebbian_config(tmp_path, field, value, message):
  config = tiny()
  config.hebbian[field] = value
  with pytest.raises(ValueError, match=message):
    experiment.train_and_evaluate(config, str(tmp_path))


@pytest.mark.parametrize('name', ['hebbian_mnist', 'hebbian_cifar10'])
def test_hebbian_config_files(name):
  full = load_config_file(name)
  assert full.hebbian.hidden == (2000,) and full.hebbian.p == 4.0 and full.hebbian.k == 2
  assert load_config_file(name, 'quick').hebbian.num_epochs < full.hebbian.num_epochs
  assert load_config_file(name, 'sgd').hebbian.backprop
  with pytest.raises(ValueError, match='unknown row'):
    load_config_file(name, 'huge')
  if name == 'hebbian_mnist':
    assert (full.hebbian.delta, full.hebbian.lr, full.head.power, full.head.m) == (0.4, 0.04, 4.5, 10)
  else:
    assert (full.hebbian.delta, full.hebbian.lr, full.hebbian.input_norm) == (0.3, 0.02, 'unit')
