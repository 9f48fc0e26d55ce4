"""Tests for jaxlocal.data: loading sources, validation, augmentation and batching."""

from __future__ import annotations

import functools
from pathlib import Path
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlocal import data
from jaxlocal.data import BatchOrder, class_limited_permutation, epoch_permutation, registry

SHARED_DATA = Path(__file__).parents[1].parent / 'shared' / 'data'


def _arrays(n_train=12, n_test=5, shape=(6, 6, 1), num_classes=3, seed=0):
  rng = np.random.default_rng(seed)
  return {
      'x_train': rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
      'y_train': np.arange(n_train, dtype=np.uint8) % num_classes,
      'x_test': rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
      'y_test': np.arange(n_test, dtype=np.uint8) % num_classes,
  }


def _write(folder, name, **overrides):
  arrays = {**_arrays(), **overrides}
  np.savez(folder / f'{name}.npz', **{k: v for k, v in arrays.items() if v is not None})
  return folder / f'{name}.npz'


@pytest.fixture(autouse=True)
def _no_env_folder(monkeypatch):
  monkeypatch.delenv('JAXLOCAL_DATA_DIR', raising=False)


@pytest.fixture
def no_tfds(monkeypatch):
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', None)  # import now raises ImportError


# --- sources -------------------------------------------------------------------------------


def test_digits_shapes_dtypes_and_split(no_tfds):
  ds = data.load_dataset('digits')
  assert ds.x_train.shape == (1437, 8, 8, 1) and ds.x_test.shape == (360, 8, 8, 1)
  assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int32
  assert ds.y_test.dtype == np.int32 and ds.num_classes == 10
  assert ds.x_train.max() == 255 and ds.image_shape == (8, 8, 1)
  assert ds.mean.dtype == np.float32 and ds.mean.shape == (1,)
  assert ds.source == 'scikit-learn digits'
  # Hard-coded constants match the training split.
  np.testing.assert_allclose(ds.x_train.mean() / 255, ds.mean[0], atol=1e-4)
  np.testing.assert_allclose(ds.x_train.std() / 255, ds.std[0], atol=1e-4)


def test_digits_image_size_upscales():
  small = data.load_dataset('digits')
  ds = data.load_dataset('digits', image_size=16)
  assert ds.x_train.shape == (1437, 16, 16, 1) and ds.x_test.shape == (360, 16, 16, 1)
  assert ds.x_train.dtype == np.uint8
  np.testing.assert_array_equal(ds.y_train, small.y_train)
  # Bilinear upscaling roughly preserves brightness.
  assert abs(ds.x_train.mean() - small.x_train.mean()) < 2.0


def test_npz_round_trip_via_data_dir_computes_stats(tmp_path):
  arrays = _arrays(shape=(6, 6), num_classes=4)  # 3-D images gain a channel axis
  path = _write(tmp_path, 'toy', **arrays)
  ds = data.load_dataset('toy', data_dir=str(tmp_path))
  assert ds.name == 'toy' and ds.source == str(path)
  np.testing.assert_array_equal(ds.x_train[..., 0], arrays['x_train'])
  np.testing.assert_array_equal(ds.y_test, arrays['y_test'])
  assert ds.x_train.shape == (12, 6, 6, 1) and ds.y_train.dtype == np.int32
  assert ds.num_classes == 4
  np.testing.assert_allclose(ds.mean, [arrays['x_train'].mean() / 255], rtol=1e-5)
  np.testing.assert_allclose(ds.std, [arrays['x_train'].std() / 255], rtol=1e-5)


def test_npz_via_env_var(tmp_path, monkeypatch):
  _write(tmp_path, 'toy')
  monkeypatch.setenv('JAXLOCAL_DATA_DIR', str(tmp_path))
  ds = data.load_dataset('toy')
  assert ds.x_test.shape == (5, 6, 6, 1) and ds.num_classes == 3


def test_variant_uses_registry_normalisation(tmp_path):
  _write(tmp_path, 'mnist-tiny')
  ds = data.load_dataset('mnist-tiny', data_dir=str(tmp_path))
  np.testing.assert_allclose(ds.mean, [0.1307])
  np.testing.assert_allclose(ds.std, [0.3081])
  assert ds.num_classes == 10 and ds.name == 'mnist-tiny'


def test_dataset_info_naming_rule():
  info = registry.dataset_info('cifar10-small')
  assert info.name == 'cifar10-small' and info.tfds_name is None
  assert info.mean == registry.DATASETS['cifar10'].mean
  assert registry.dataset_info('svhn').tfds_train_split == 'train+extra'
  for bad in ('nope', 'mnist-', 'nope-small'):
    with pytest.raises(KeyError, match='known names'):
      registry.dataset_info(bad)


def test_unknown_name_lists_every_place_looked(tmp_path, no_tfds):
  with pytest.raises(data.DatasetNotFoundError) as err:
    data.load_dataset('mystery', data_dir=str(tmp_path))
  msg = str(err.value)
  assert "'mystery'" in msg and str(tmp_path / 'mystery.npz') in msg
  assert 'TFDS: not tried' in msg and 'Known datasets' in msg and 'cifar10' in msg
  assert 'JAXLOCAL_DATA_DIR' in msg and '--config.data_dir' in msg
  assert 'scikit-learn' not in msg


def test_registered_name_not_found_reports_tfds_not_installed(tmp_path, monkeypatch, no_tfds):
  monkeypatch.setenv('JAXLOCAL_DATA_DIR', str(tmp_path))
  with pytest.raises(data.DatasetNotFoundError) as err:
    data.load_dataset('cifar100')
  msg = str(err.value)
  assert str(tmp_path / 'cifar100.npz') in msg
  assert 'TFDS: not installed' in msg and 'jaxlocal[tfds]' in msg and 'tfds build cifar100' in msg


def test_no_folder_configured_is_reported(no_tfds):
  with pytest.raises(data.DatasetNotFoundError, match='JAXLOCAL_DATA_DIR is not set'):
    data.load_dataset('mnist')


def test_missing_data_dir(tmp_path):
  missing = tmp_path / 'absent'
  with pytest.raises(data.DatasetNotFoundError, match='does not exist') as err:
    data.load_dataset('digits', data_dir=str(missing))
  assert str(missing) in str(err.value)


@pytest.mark.parametrize('name, overrides, problem', [
    ('toy', {'y_test': None}, r"missing arrays \['y_test'\]"),
    ('toy', {'x_train': np.zeros((12, 6, 6, 1), np.float32)}, 'x_train has dtype float32'),
    ('toy', {'x_train': np.zeros((12, 6), np.uint8)}, 'must be 4-D'),
    ('toy', {'y_train': np.zeros((12, 1), np.int64)}, 'y_train has shape'),
    ('toy', {'y_train': np.zeros(12, np.float32)}, 'integer'),
    ('toy', {'y_train': np.zeros(11, np.int64)}, 'x_train has 12 examples but y_train has 11'),
    ('toy', {'x_test': np.zeros((5, 7, 7, 1), np.uint8)}, 'train images have shape'),
    ('toy', {'x_test': np.zeros((0, 6, 6, 1), np.uint8), 'y_test': np.zeros(0, np.int64)},
     'test split is empty'),
    ('toy', {'y_test': np.array([0, 1, -1, 0, 0])}, r'labels in \[-1, 1\]'),
    ('mnist-x', {'y_train': np.full(12, 10, np.uint8)}, 'below num_classes=10'),
    ('mnist-x', {'x_train': np.zeros((12, 6, 6, 3), np.uint8),
                 'x_test': np.zeros((5, 6, 6, 3), np.uint8)}, 'registered with 1'),
])
def test_bad_npz_raises_format_error(tmp_path, name, overrides, problem):
  path = _write(tmp_path, name, **overrides)
  with pytest.raises(data.DatasetFormatError, match=problem) as err:
    data.load_dataset(name, data_dir=str(tmp_path))
  assert str(path) in str(err.value)


def test_unreadable_npz_raises_format_error(tmp_path):
  (tmp_path / 'toy.npz').write_bytes(b'not a zip archive')
  with pytest.raises(data.DatasetFormatError, match='cannot be read as an .npz'):
    data.load_dataset('toy', data_dir=str(tmp_path))
  with open(tmp_path / 'one.npz', 'wb') as f:
    np.save(f, np.zeros(3))
  with pytest.raises(data.DatasetFormatError, match='one unnamed .npy array'):
    data.load_dataset('one', data_dir=str(tmp_path))


def test_constant_channel_gets_floored_std(tmp_path):
  _write(tmp_path, 'flat', x_train=np.full((12, 6, 6, 1), 7, np.uint8))
  ds = data.load_dataset('flat', data_dir=str(tmp_path))
  np.testing.assert_allclose(ds.std, [1 / 255])
  np.testing.assert_allclose(ds.mean, [7 / 255])


def test_train_examples_subset_and_errors(tmp_path):
  arrays = _arrays()
  _write(tmp_path, 'toy', **arrays)
  ds = data.load_dataset('toy', data_dir=str(tmp_path), train_examples=7)
  np.testing.assert_array_equal(ds.x_train, arrays['x_train'][:7])
  assert len(ds.y_train) == 7 and len(ds.x_test) == 5
  with pytest.raises(ValueError, match='train_examples=13.*only 12'):
    data.load_dataset('toy', data_dir=str(tmp_path), train_examples=13)
  with pytest.raises(ValueError, match='negative'):
    data.load_dataset('toy', data_dir=str(tmp_path), train_examples=-1)


def _fake_split(split, n):
  """Examples whose first pixel and label identify the split and position."""
  offset = {'train': 0, 'extra': 100, 'test': 200}[split]
  return [{'image': np.full((4, 4, 3), offset + i, np.uint8), 'label': np.int64(i % 10)}
          for i in range(n)]


def _fake_tfds(calls, with_data_source=True):
  sizes = {'train': 3, 'extra': 2, 'test': 4}
  module = types.ModuleType('tensorflow_datasets')

  def data_source(name, *, split, data_dir=None, download=True):
    calls.append((name, split, data_dir, download))
    return _fake_split(split, sizes[split])

  def load(name, *, split, data_dir=None, batch_size=None, download=True):
    calls.append((name, split, data_dir, download, batch_size))
    examples = _fake_split(split, sizes[split])
    return {'image': np.stack([e['image'] for e in examples]),
            'label': np.array([e['label'] for e in examples])}

  if with_data_source:
    module.data_source = data_source
  module.load = load
  module.as_numpy = lambda tree: tree
  return module


@pytest.mark.parametrize('with_data_source', [True, False])
def test_fake_tfds_concatenates_train_plus_extra(monkeypatch, tmp_path, with_data_source):
  calls = []
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', _fake_tfds(calls, with_data_source))
  ds = data.load_dataset('svhn', data_dir=str(tmp_path))
  assert ds.source == f'tfds:svhn_cropped ({tmp_path})'
  np.testing.assert_array_equal(ds.x_train[:, 0, 0, 0], [0, 1, 2, 100, 101])
  np.testing.assert_array_equal(ds.x_test[:, 0, 0, 0], [200, 201, 202, 203])
  np.testing.assert_array_equal(ds.y_train, [0, 1, 2, 0, 1])
  assert ds.y_train.dtype == np.int32 and ds.x_train.shape == (5, 4, 4, 3)
  assert [c[1] for c in calls] == ['train', 'extra', 'test']
  assert all(c[0] == 'svhn_cropped' and c[2] == str(tmp_path) and c[3] is False for c in calls)
  np.testing.assert_allclose(ds.mean, registry.DATASETS['svhn'].mean)


def test_fake_tfds_failure_is_reported_not_raised(monkeypatch):
  module = types.ModuleType('tensorflow_datasets')

  def data_source(name, **kwargs):
    raise RuntimeError(f'dataset {name} not prepared')

  module.data_source = data_source
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', module)
  with pytest.raises(data.DatasetNotFoundError) as err:
    data.load_dataset('kmnist')
  msg = str(err.value)
  assert 'TFDS: kmnist not found' in msg and 'RuntimeError: dataset kmnist not prepared' in msg


@pytest.mark.skipif(not (SHARED_DATA / 'mnist.npz').exists(),
                    reason=f'real MNIST not available at {SHARED_DATA / "mnist.npz"}')
def test_real_mnist_from_shared_folder():
  ds = data.load_dataset('mnist', data_dir=str(SHARED_DATA))
  assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
  assert ds.y_train.dtype == np.int32 and ds.num_classes == 10
  assert ds.source == str(SHARED_DATA / 'mnist.npz')
  np.testing.assert_allclose(ds.x_train.mean() / 255, ds.mean[0], atol=1e-4)


# --- augmentation --------------------------------------------------------------------------

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)


def _images(batch=16, size=6, seed=1):
  return np.random.default_rng(seed).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)


def _numpy_normalise(images):
  return (images.astype(np.float32) / np.float32(255) - np.float32(MEAN)) / np.float32(STD)


def test_eval_normalisation_matches_numpy():
  images = _images()
  out = data.preprocess(None, jnp.asarray(images), mean=np.array(MEAN), std=STD)
  assert out.dtype == jnp.float32 and out.shape == images.shape
  np.testing.assert_allclose(np.asarray(out), _numpy_normalise(images), rtol=1e-6, atol=1e-6)


def test_crop_only_shifts_content():
  images, p = _images(), 2
  out = np.asarray(data.preprocess(jax.random.key(0), images, mean=MEAN, std=STD,
                                   crop_padding=p))
  padded = _numpy_normalise(np.pad(images, ((0, 0), (p, p), (p, p), (0, 0))))
  offsets = []
  for b in range(len(images)):
    hits = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
            if np.allclose(out[b], padded[b, dy:dy + 6, dx:dx + 6], atol=1e-6)]
    assert hits, f'example {b} is not a window of its zero-padded image'
    offsets.append(hits[0])
  assert len(set(offsets)) > 1  # offsets vary across examples


def test_flip_mirrors_some_examples():
  images = _images()
  out = np.asarray(data.preprocess(jax.random.key(1), images, mean=MEAN, std=STD, flip=True))
  plain = _numpy_normalise(images)
  mirrored = [np.allclose(o, p[:, ::-1], atol=1e-6) for o, p in zip(out, plain)]
  unchanged = [np.allclose(o, p, atol=1e-6) for o, p in zip(out, plain)]
  assert all(m != u for m, u in zip(mirrored, unchanged))
  assert any(mirrored) and any(unchanged)


@pytest.mark.parametrize('side', [3, 4])
def test_cutout_zeroes_one_clipped_square(side):
  images = _images(batch=32, size=8)  # with these constants no normalised pixel is exactly 0
  out = np.asarray(data.preprocess(jax.random.key(2), images, mean=MEAN, std=STD, cutout=side))
  plain = _numpy_normalise(images)
  full_squares = 0
  for o, p in zip(out, plain):
    hole = np.all(o == 0, axis=-1)
    np.testing.assert_allclose(o[~hole], p[~hole], atol=1e-6)
    rows, cols = np.nonzero(hole)
    assert 0 < hole.sum() <= side**2
    box = hole[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    assert box.all() and box.shape[0] <= side and box.shape[1] <= side
    full_squares += hole.sum() == side**2
  assert full_squares > 0


def test_augmentation_is_deterministic_and_jittable():
  images = jnp.asarray(_images())
  fn = jax.jit(functools.partial(data.preprocess, mean=MEAN, std=STD, crop_padding=2, flip=True,
                                 cutout=3))
  a, b = fn(jax.random.key(3), images), fn(jax.random.key(3), images)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert not np.array_equal(np.asarray(a), np.asarray(fn(jax.random.key(4), images)))
  eager = data.preprocess(jax.random.key(3), images, mean=MEAN, std=STD, crop_padding=2,
                          flip=True, cutout=3)
  np.testing.assert_allclose(np.asarray(a), np.asarray(eager), atol=1e-6)


# --- batching ------------------------------------------------------------------------------


def test_batch_indices_cover_permutation_once():
  n, batch = 103, 10
  perm = data.epoch_permutation(jax.random.key(5), n)
  assert perm.dtype == jnp.int32 and sorted(np.asarray(perm).tolist()) == list(range(n))
  steps = data.steps_per_epoch(n, batch)
  assert steps == 10
  take = jax.jit(data.batch_indices, static_argnums=2)
  batches = [take(perm, jnp.int32(s), batch) for s in range(steps)]
  assert all(b.dtype == jnp.int32 and b.shape == (batch,) for b in batches)
  seen = np.concatenate(batches)
  assert len(set(seen.tolist())) == steps * batch
  np.testing.assert_array_equal(seen, np.asarray(perm)[:steps * batch])


@pytest.mark.parametrize('batch', [0, -2, 11])
def test_steps_per_epoch_rejects_bad_batch_size(batch):
  with pytest.raises(ValueError, match=f'batch_size={batch}'):
    data.steps_per_epoch(10, batch)


def test_eval_batches_cover_each_example_once():
  x, y = np.arange(23 * 2).reshape(23, 2), np.arange(23)
  batches = list(data.eval_batches(x, y, 5))
  assert len(batches) == 5
  assert all(xb.shape == (5, 2) and yb.shape == (5,) and m.shape == (5,) for xb, yb, m in batches)
  counts = np.zeros(23)
  for xb, yb, m in batches:
    np.testing.assert_array_equal(xb[:, 0] // 2, yb)
    np.add.at(counts, yb, m)
  np.testing.assert_array_equal(counts, np.ones(23))
  assert batches[-1][2].tolist() == [1, 1, 1, 0, 0]


def test_class_limited_batches_hold_few_classes_and_cover_the_epoch():
  labels = jnp.asarray(np.repeat(np.arange(100), 30)[np.random.default_rng(0).permutation(3000)])
  perm = np.asarray(class_limited_permutation(jax.random.key(0), labels, 100, 20, 50))
  assert sorted(perm) == list(range(3000))          # every example once
  classes = [len(set(np.asarray(labels)[perm[i:i + 50]])) for i in range(0, 3000, 50)]
  assert max(classes) <= 40 and np.median(classes) <= 20   # only group-straddling batches mix
  shuffled = np.asarray(epoch_permutation(jax.random.key(0), 3000))
  assert np.median([len(set(np.asarray(labels)[shuffled[i:i + 50]]))
                    for i in range(0, 3000, 50)]) > 30


def test_batch_order_switches_to_uniform_after_until_epoch():
  labels = jnp.asarray(np.arange(200) % 10)
  order = BatchOrder(classes_per_batch=2, until_epoch=3)
  key = jax.random.key(1)
  kwargs = dict(num_classes=10, batch_size=20)
  limited = order.permutation(key, labels, epoch=3, **kwargs)
  assert len(set(np.asarray(labels)[np.asarray(limited)[:20]])) <= 4
  np.testing.assert_array_equal(order.permutation(key, labels, epoch=4, **kwargs),
                                epoch_permutation(key, 200))
  with pytest.raises(ValueError, match='must be below the 10 classes'):
    BatchOrder(classes_per_batch=10).permutation(key, labels, epoch=1, **kwargs)
  with pytest.raises(ValueError, match='>= 0'):
    BatchOrder(classes_per_batch=-1)


def test_one_stray_label_is_an_error_naming_it(tmp_path):
  y_train = np.arange(12, dtype=np.uint8) % 3
  y_train[7] = 42  # would otherwise make a 43-class network with 39 empty classes
  _write(tmp_path, 'mydigits', y_train=y_train)
  with pytest.raises(data.DatasetFormatError) as error:
    data.load_dataset('mydigits', data_dir=str(tmp_path))
  message = str(error.value)
  assert '42 (y_train[7])' in message and '--config.num_classes=43' in message


def test_test_label_absent_from_training_is_an_error(tmp_path):
  _write(tmp_path, 'toy', y_test=np.array([0, 1, 2, 3, 0], np.uint8))
  with pytest.raises(data.DatasetFormatError, match=r'3 \(y_test\[3\]\)'):
    data.load_dataset('toy', data_dir=str(tmp_path))


def test_stated_num_classes_allows_empty_classes(tmp_path):
  y_train = np.arange(12, dtype=np.uint8) % 3
  y_train[7] = 5
  _write(tmp_path, 'toy', y_train=y_train)
  ds = data.load_dataset('toy', data_dir=str(tmp_path), num_classes=6)
  assert (ds.num_classes, ds.classes_from) == (6, 'config')
  with pytest.raises(data.DatasetFormatError, match='labels go up to 5 but num_classes=4'):
    data.load_dataset('toy', data_dir=str(tmp_path), num_classes=4)


def test_class_count_says_where_it_came_from(tmp_path):
  _write(tmp_path, 'toy')
  _write(tmp_path, 'mnist-tiny')
  assert data.load_dataset('toy', data_dir=str(tmp_path)).classes_from == 'labels'
  assert data.load_dataset('mnist-tiny', data_dir=str(tmp_path)).classes_from == 'registry'
  with pytest.raises(ValueError, match='registered with 10 classes'):
    data.load_dataset('mnist-tiny', data_dir=str(tmp_path), num_classes=12)


def test_missing_dataset_names_the_variant_beside_it(tmp_path):
  _write(tmp_path, 'cifar10-small', x_train=np.zeros((12, 4, 4, 3), np.uint8),
         x_test=np.zeros((5, 4, 4, 3), np.uint8))
  with pytest.raises(data.DatasetNotFoundError) as error:
    data.load_dataset('cifar10', data_dir=str(tmp_path))
  assert 'cifar10-small.npz' in str(error.value)
  assert '--config.dataset=cifar10-small' in str(error.value)
