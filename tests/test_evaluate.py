"""The shared representation measures against NumPy on small labelled point sets."""

import dataclasses
import itertools

import numpy as np
import pytest

from jaxlocal.evaluate import class_distance_ratio


def np_mean_pairwise(points):
  return np.mean([np.linalg.norm(a - b) for a, b in itertools.permutations(points, 2)])


def test_class_distance_ratio_matches_numpy():
  rng = np.random.default_rng(0)
  labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])   # class 3 has one example: skipped
  features = rng.normal(size=(10, 2, 3)) + labels[:, None, None]
  got = class_distance_ratio(features, labels)
  flat = features.reshape(10, -1).astype(np.float64)
  intra = np.mean([np_mean_pairwise(flat[labels == c]) for c in (0, 1, 2)])
  inter = np_mean_pairwise(np.stack([flat[labels == c].mean(0) for c in (0, 1, 2)]))
  np.testing.assert_allclose(got['intra'], intra, rtol=1e-5)
  np.testing.assert_allclose(got['inter'], inter, rtol=1e-5)
  np.testing.assert_allclose(got['ratio'], inter / intra, rtol=1e-5)


def test_separated_classes_have_a_higher_ratio():
  rng = np.random.default_rng(1)
  labels = np.repeat(np.arange(3), 20)
  mixed = rng.normal(size=(60, 5))
  separated = mixed + 10 * np.eye(5)[labels]
  assert class_distance_ratio(separated, labels)['ratio'] > 5 * class_distance_ratio(
      mixed, labels)['ratio']


def test_bad_inputs():
  with pytest.raises(ValueError, match='3 feature rows but 2 labels'):
    class_distance_ratio(np.zeros((3, 2)), np.zeros(2))
  with pytest.raises(ValueError, match='at least two classes'):
    class_distance_ratio(np.zeros((3, 2)), np.array([0, 0, 1]))


# --- evaluators, probe features and every method's Learner.features ---------------------------

import json  # noqa: E402

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from jaxlocal import data as data_lib  # noqa: E402
from jaxlocal.blocks import Block, make_learner  # noqa: E402
from jaxlocal.evaluate import Evaluator, metafeatures, probe_features, robustness  # noqa: E402
from jaxlocal.objectives.base import classifier  # noqa: E402
from jaxlocal.phases import Phase  # noqa: E402
from jaxlocal.train import fit_phases  # noqa: E402


class _Dense(nn.Module):
  features: int

  @nn.compact
  def __call__(self, x):
    return nn.Dense(self.features)(x.reshape(len(x), -1))


def toy_dataset(n_train=24, n_test=12, classes=3, seed=0):
  rng = np.random.default_rng(seed)
  image = lambda n: rng.integers(0, 256, (n, 4, 4, 1), dtype=np.uint8)
  label = lambda n: (np.arange(n) % classes).astype(np.int32)
  return data_lib.Dataset('toy', image(n_train), label(n_train), image(n_test), label(n_test),
                          classes, np.full(1, 0.5, np.float32), np.full(1, 0.25, np.float32),
                          'synthetic')


def toy_learner(classes=3):
  return make_learner([Block(_Dense(5), name='hidden'),
                       Block(_Dense(classes), classifier(), name='output')], optax.sgd(0.1))


def test_evaluator_records_go_to_their_file_and_to_one_metrics_line_also_after_a_rerun(tmp_path):
  dataset, learner = toy_dataset(), toy_learner()
  calls, finished = [], []

  def fn(state, data):
    calls.append(int(state.step))
    return {'step': int(state.step), 'size': {'test': len(data.x_test)}}

  phase = Phase('', learner, 2, 8, evaluators=(Evaluator('toy', fn, file='toy_eval.json'),),
                finish=lambda state, workdir, records: finished.append(records))
  for _ in range(2):  # the second run finds the phase complete and evaluates it again
    fit_phases([phase], dataset, workdir=str(tmp_path), progress_bar=False, eval_batch_size=6)
  assert calls == [6, 6]
  assert json.loads((tmp_path / 'toy_eval.json').read_text()) == {'step': 6,
                                                                  'size': {'test': 12}}
  lines = [json.loads(l) for l in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert [l for l in lines if 'evaluator' in l] == [
      {'epoch': 2, 'evaluator': 'toy', 'phase': '', 'step': 6, 'size/test': 12}]
  assert [l['epoch'] for l in lines if 'evaluator' not in l] == [1, 2]
  # finish gets the phase's epoch records, not the evaluator's line
  assert [[r['epoch'] for r in records] for records in finished] == [[1, 2], [1, 2]]


def test_probe_features_are_a_pure_function_with_the_deformed_test_set_beside():
  dataset, learner = toy_dataset(), toy_learner()
  x = data_lib.preprocess(None, dataset.x_train[:2], mean=dataset.mean, std=dataset.std)
  state = learner.init(jax.random.key(0), x)
  deform = data_lib.Augment(rotation=30.0, brightness=0.5)
  first, second = (probe_features(learner, state, dataset, dataset, (0, 1), deform=deform,
                                  deform_seed=3) for _ in range(2))
  assert first.x_train.shape == (24, 1, 1, 5 + 3) and first.x_test.shape == (12, 1, 1, 8)
  np.testing.assert_array_equal(first.x_train, second.x_train)
  (deformed, y), = first.extra_tests.values()
  np.testing.assert_array_equal(deformed, second.extra_tests['deformed'][0])
  np.testing.assert_array_equal(y, dataset.y_test)
  assert deformed.shape == first.x_test.shape and not np.allclose(deformed, first.x_test)
  assert dataset.extra_tests == {}   # the input is not touched
  plain = probe_features(learner, state, dataset, dataset, (1,))
  assert plain.extra_tests == {} and plain.x_train.shape == (24, 1, 1, 3)
  np.testing.assert_array_equal(plain.x_train, first.x_train[..., 5:])


def test_robustness_scores_every_probe_on_the_deformed_test_set():
  dataset = toy_dataset()
  probe = toy_learner()
  data = dataclasses.replace(dataset, extra_tests={'deformed': (dataset.x_test, dataset.y_test)})
  x = data_lib.preprocess(None, dataset.x_train[:2], mean=dataset.mean, std=dataset.std)
  state = probe.init(jax.random.key(0), x)
  evaluator = robustness(probe, {'rotation': 30.0}, batch_size=5)
  record = evaluator.fn(state, data)
  assert evaluator.name == 'robustness' and evaluator.filename == 'robustness.json'
  assert record['deform'] == {'rotation': 30.0} and set(record['accuracy']) == {'output'}
  assert 0.0 <= record['accuracy']['output'] <= 1.0
  assert 'output=' in evaluator.summary(record)
  with pytest.raises(ValueError, match='deformed'):
    evaluator.fn(state, dataset)


def _associated_learner():
  from jaxlocal.methods.associated import make_associated_learner
  from jaxlocal.models.associated import forward_modules
  return make_associated_learner(forward_modules('mlp', 6), 6, 3, optax.sgd(0.1),
                                 optax.sgd(0.1))[0]


def _bp_baseline():
  from jaxlocal.methods.associated import backprop_baseline
  from jaxlocal.models.associated import forward_modules
  return backprop_baseline(forward_modules('mlp', 6, activation='relu'), 6, 3, optax.sgd(0.1))


def _dtp_learner():
  from jaxlocal.models.dtp import DTPForward, DTPInverse
  from jaxlocal.models.heads import EmbeddingHead
  from jaxlocal.rules.dtp import make_dtp_learner
  sgd = optax.sgd(0.1)
  loss = lambda z, batch: (jnp.mean(z ** 2), {})
  return make_dtp_learner([DTPForward(2, 'pool'), DTPForward(3, 'pool')], [DTPInverse(2)],
                          EmbeddingHead(4), loss, forward_optimizer=sgd, inverse_optimizer=sgd,
                          top_optimizer=sgd, target_step=0.5, noise_std=0.1)


@pytest.mark.parametrize('make, shapes', [
    (toy_learner, [(5, 5), (5, 3)]),
    (_associated_learner, [(5, 6), (5, 6)]),
    (_bp_baseline, [(5, 6), (5, 6), (5, 3)]),
    (_dtp_learner, [(5, 2, 2, 2), (5, 1, 1, 3)]),
])
def test_every_method_offers_the_features_of_its_blocks(make, shapes):
  learner = make()
  x = jax.random.normal(jax.random.key(0), (5, 4, 4, 1))
  state = learner.init(jax.random.key(1), x)
  assert [h.shape for h in learner.features(state, x)] == shapes


def test_metafeatures_name_every_block_of_the_learner():
  dataset, learner = toy_dataset(), toy_learner()
  x = data_lib.preprocess(None, dataset.x_train[:2], mean=dataset.mean, std=dataset.std)
  state = learner.init(jax.random.key(0), x)
  ratios = metafeatures(learner, state, dataset, max_examples=9)
  assert list(ratios) == ['hidden', 'output']
  assert all(set(r) == {'inter', 'intra', 'ratio'} for r in ratios.values())
