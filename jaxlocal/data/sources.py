"""``load_dataset``: find a dataset (npz folder, TFDS, scikit-learn), validate and shape it.

Never switches silently to other data: when no source holds the dataset, the error lists
every place looked and how to provide the data.
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
import os
import zipfile

import numpy as np

from jaxlocal.data.checks import KEYS, LAYOUT, check_arrays
from jaxlocal.data.errors import DatasetFormatError, DatasetNotFoundError
from jaxlocal.data.images import channel_stats, resize_images
from jaxlocal.data.registry import DATASETS, DatasetInfo, dataset_info

ENV_VAR = 'JAXLOCAL_DATA_DIR'
TFDS_INSTALL = 'pip install "jaxlocal[tfds]"'


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """A loaded dataset; compares by identity (it holds arrays).

  x_*: uint8 images (N, H, W, C), or float32 features that methods derive from them (used as
  they are, not divided by 255); y_*: int32 (N,); mean, std: float32 (C,), in [0, 1] pixel
  units for images.
  ``source`` says where the arrays came from. ``extra_tests`` holds further test sets as
  ``{name: (x, y)}`` shaped as x_test, y_test (e.g. ``'deformed'``: a deformed copy of the test
  set that an evaluator scores).
  """

  name: str
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int
  mean: np.ndarray
  std: np.ndarray
  source: str
  classes_from: str = ''   # where num_classes came from: 'registry', 'labels' or 'config'
  extra_tests: dict = dataclasses.field(default_factory=dict)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """(H, W, C)."""
    return self.x_train.shape[1:]


class _Missing(Exception):
  """A source lacks the dataset; the message becomes one line of the not-found error."""


def _npz_folder(data_dir: str | None, looked: list[str]) -> str | None:
  """The folder to search for ``<name>.npz``: ``data_dir``, else $JAXLOCAL_DATA_DIR, else None."""
  if data_dir:
    if not os.path.isdir(data_dir):
      raise DatasetNotFoundError(
          f'data_dir {data_dir!r} does not exist or is not a directory; pass an existing folder '
          f'holding <name>.npz (--config.data_dir=<folder>), or leave it empty to use ${ENV_VAR}')
    return data_dir
  folder = os.environ.get(ENV_VAR)
  if not folder:
    looked.append(f'npz folder: none (no data_dir given and ${ENV_VAR} is not set)')
    return None
  if not os.path.isdir(folder):
    looked.append(f'npz folder ${ENV_VAR}={folder}: does not exist')
    return None
  return folder


def _read_npz(path: str) -> Mapping[str, np.ndarray]:
  """All arrays of an .npz archive by key."""
  try:
    loaded = np.load(path)
    if not isinstance(loaded, np.lib.npyio.NpzFile):
      raise ValueError('it holds one unnamed .npy array')
    with loaded as archive:
      return {key: archive[key] for key in archive.files}
  except (OSError, ValueError, zipfile.BadZipFile) as e:
    raise DatasetFormatError(
        f'{path}: cannot be read as an .npz archive ({type(e).__name__}: {e}). Save it with '
        f'np.savez({os.path.basename(path)!r}, x_train=..., y_train=..., x_test=..., y_test=...); '
        f'expected layout: {LAYOUT}.') from e


def _tfds_part(tfds, tfds_name: str, split: str, data_dir: str | None):
  """One plain split of a prepared TFDS dataset: uint8 (N, H, W, C), integer (N,)."""
  if hasattr(tfds, 'data_source'):
    source = tfds.data_source(tfds_name, split=split, data_dir=data_dir, download=False)
    examples = [source[i] for i in range(len(source))]
    return (np.stack([e['image'] for e in examples]),
            np.asarray([e['label'] for e in examples]))
  batch = tfds.as_numpy(
      tfds.load(tfds_name, split=split, data_dir=data_dir, batch_size=-1, download=False))
  return batch['image'], batch['label']


def _read_tfds(info: DatasetInfo, data_dir: str | None) -> Mapping[str, np.ndarray]:
  """Train and test arrays from TFDS (never downloads); a split 'a+b' concatenates parts."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise _Missing(f'TFDS: not installed ({TFDS_INSTALL})') from None
  arrays = {}
  try:
    for split, spec in (('train', info.tfds_train_split), ('test', info.tfds_test_split)):
      parts = [_tfds_part(tfds, info.tfds_name, p, data_dir) for p in spec.split('+')]
      arrays[f'x_{split}'] = np.concatenate([x for x, _ in parts])
      arrays[f'y_{split}'] = np.concatenate([y for _, y in parts])
  except Exception as e:  # any TFDS failure means "not available here", reported to the user
    where = data_dir or 'the TFDS default data_dir'
    raise _Missing(f'TFDS: {info.tfds_name} not found in {where} ({type(e).__name__}: {e})') from e
  return arrays


def _read_digits() -> Mapping[str, np.ndarray]:
  """scikit-learn's 8x8 digits as uint8 (N, 8, 8, 1); every 5th example (index % 5 == 0) is test."""
  from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel
  digits = load_digits()
  x = np.round(digits.images * 255 / 16).astype(np.uint8)[..., None]
  test = np.arange(len(x)) % 5 == 0
  return {'x_train': x[~test], 'y_train': digits.target[~test],
          'x_test': x[test], 'y_test': digits.target[test]}


def _variants_in(folder: str | None, name: str) -> list[str]:
  """The ``<name>-<variant>`` datasets stored as npz files in ``folder``."""
  if not folder or not os.path.isdir(folder):
    return []
  return sorted(f[:-len('.npz')] for f in os.listdir(folder)
                if f.startswith(f'{name}-') and f.endswith('.npz'))


def _not_found(name: str, info: DatasetInfo | None, looked: list[str],
               folder: str | None = None) -> DatasetNotFoundError:
  variants = _variants_in(folder, name)
  if variants:
    return DatasetNotFoundError(
        f'dataset {name!r} was not found ({folder} has no {name}.npz), but that folder holds '
        f'{", ".join(v + ".npz" for v in variants)}: use it with '
        f'--config.dataset={variants[0]}')
  tfds_hint = ''
  if info is not None and info.tfds_name is not None:
    tfds_hint = (f'; or install the TFDS extra ({TFDS_INSTALL}) and prepare it with '
                 f'`tfds build {info.tfds_name} --data_dir=<folder>`')
  places = ''.join(f'\n  - {line}' for line in looked)
  return DatasetNotFoundError(
      f'dataset {name!r} was not found. Looked in:{places}\n'
      f'To provide it, put {name}.npz holding {list(KEYS)} ({LAYOUT}) into a folder and pass '
      f'--config.data_dir=<folder> or set {ENV_VAR}=<folder>{tfds_hint}. '
      f'Known datasets: {sorted(DATASETS)} and <name>-<variant> of these.')


def _find(name: str, info: DatasetInfo | None,
          data_dir: str | None) -> tuple[Mapping[str, np.ndarray], str]:
  """Raw arrays and a description of their source; the first source holding them wins."""
  looked = []
  folder = _npz_folder(data_dir, looked)
  if folder is not None:
    path = os.path.join(folder, f'{name}.npz')
    if os.path.isfile(path):
      return _read_npz(path), path
    looked.append(f'npz file {path}: does not exist')
  if info is None:
    looked.append(f'TFDS: not tried, {name!r} is not a registered dataset')
  elif info.tfds_name is None:
    looked.append(f'TFDS: not tried, {name!r} has no TFDS catalogue entry')
  else:
    try:
      return _read_tfds(info, data_dir or None), f'tfds:{info.tfds_name} ({data_dir or "default"})'
    except _Missing as e:
      looked.append(str(e))
  if name == 'digits':
    return _read_digits(), 'scikit-learn digits'
  raise _not_found(name, info, looked, folder)


def _inferred_classes(y_train: np.ndarray, y_test: np.ndarray, source: str) -> int:
  """max label + 1 of unregistered data, once every class occurs in the training labels and
  every test label is a training class (else one stray label would add empty classes)."""
  num_classes = int(max(y_train.max(), y_test.max())) + 1
  train = set(np.unique(y_train).tolist())
  missing = sorted(set(range(num_classes)) - train)
  if not missing:
    return num_classes
  top = missing[0] - 1   # 0..top all occur in y_train
  strays = []
  for key, y in (('y_train', y_train), ('y_test', y_test)):
    for label in sorted(set(np.unique(y[y > top]).tolist())):
      strays.append(f'{label} ({key}[{int(np.flatnonzero(y == label)[0])}])')
  shown = ', '.join(map(str, missing[:6])) + (', …' if len(missing) > 6 else '')
  raise DatasetFormatError(
      f'{source}: the labels imply {num_classes} classes but {len(missing)} of them never occur '
      f'in y_train ({shown}); labels above {top}: {", ".join(strays[:4])}. Fix those labels, or '
      f'set --config.num_classes={num_classes} if the empty classes are meant.')


def _num_classes(info: DatasetInfo | None, num_classes: int, y_train: np.ndarray,
                 y_test: np.ndarray, source: str) -> tuple[int, str]:
  """(class count, where it came from) for the registry, the config or the labels."""
  if num_classes < 0:
    raise ValueError(f'num_classes={num_classes} is negative; use 0 to take it from the '
                     'registry or the labels')
  if info is not None:
    if num_classes and num_classes != info.num_classes:
      raise ValueError(f'num_classes={num_classes} but {info.name!r} is registered with '
                       f'{info.num_classes} classes; leave num_classes at 0')
    return info.num_classes, 'registry'
  if num_classes:
    top = int(max(y_train.max(), y_test.max()))
    if top >= num_classes:
      raise DatasetFormatError(f'{source}: labels go up to {top} but num_classes={num_classes}; '
                               f'use num_classes >= {top + 1}, or 0 to count them')
    return num_classes, 'config'
  return _inferred_classes(y_train, y_test, source), 'labels'


def load_dataset(name: str, *, data_dir: str | None = None, train_examples: int = 0,
                 image_size: int = 0, num_classes: int = 0) -> Dataset:
  """Load dataset ``name`` from ``data_dir`` (or $JAXLOCAL_DATA_DIR), TFDS or scikit-learn.

  ``name`` is a registry key, ``<key>-<variant>`` (registry constants, npz only) or any name with
  a ``<name>.npz`` in the folder (normalisation computed from the data; classes from
  ``num_classes``, or 0..max label when every class occurs in the training labels).
  ``data_dir`` None or '' means "not given". ``train_examples > 0`` keeps the first N training
  examples; ``image_size > 0`` resizes all images to image_size x image_size (bilinear) once, here.
  """
  if train_examples < 0:
    raise ValueError(f'train_examples={train_examples} is negative; use 0 for all training '
                     'examples or N > 0 for the first N')
  if image_size < 0:
    raise ValueError(f'image_size={image_size} is negative; use 0 to keep the stored size '
                     'or S > 0 to resize to S x S')
  try:
    info = dataset_info(name)
  except KeyError:
    info = None
  raw, source = _find(name, info, data_dir)
  arrays = check_arrays(raw, source, None if info is None else info.num_classes)
  x_train, y_train = arrays['x_train'], arrays['y_train']
  x_test, y_test = arrays['x_test'], arrays['y_test']
  num_classes, classes_from = _num_classes(info, num_classes, y_train, y_test, source)
  if info is None:
    mean, std = channel_stats(x_train)
  else:
    mean, std = np.asarray(info.mean, np.float32), np.asarray(info.std, np.float32)
    if len(mean) != x_train.shape[-1]:
      raise DatasetFormatError(
          f'{source}: images have {x_train.shape[-1]} channels but {info.name!r} is registered '
          f'with {len(mean)}; store {len(mean)}-channel images, or use a name outside the '
          'registry so normalisation is computed from the data.')
  if train_examples:
    if train_examples > len(x_train):
      raise ValueError(f'train_examples={train_examples} but {source} has only {len(x_train)} '
                       'training examples; use at most that many, or 0 for all')
    x_train, y_train = x_train[:train_examples], y_train[:train_examples]
  if image_size:
    x_train, x_test = resize_images(x_train, image_size), resize_images(x_test, image_size)
  return Dataset(name, x_train, y_train, x_test, y_test, num_classes, mean, std, source,
                 classes_from)
