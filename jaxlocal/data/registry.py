"""Known datasets: class count, image shape, normalisation constants and where TFDS keeps them.

Normalisation constants are those of the reference code (Nøkland & Eidnes, local-loss
``train.py``), per channel in [0, 1] pixel units. A name is a registry key or
``<key>-<variant>`` (e.g. ``'cifar10-small'``), which shares the key's constants but is
never fetched from TFDS.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """Static facts about one dataset; ``mean``/``std`` have one entry per channel.

  ``image_shape`` (H, W, C) is the stored size, before any ``image_size`` resize.
  """

  name: str
  num_classes: int
  image_shape: tuple[int, int, int]
  mean: tuple[float, ...]
  std: tuple[float, ...]
  tfds_name: str | None
  tfds_train_split: str = 'train'
  tfds_test_split: str = 'test'


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo('mnist', 10, (28, 28, 1), (0.1307,), (0.3081,), 'mnist'),
        DatasetInfo('fashion_mnist', 10, (28, 28, 1), (0.286,), (0.353,), 'fashion_mnist'),
        DatasetInfo('kmnist', 10, (28, 28, 1), (0.1904,), (0.3475,), 'kmnist'),
        DatasetInfo('cifar10', 10, (32, 32, 3), (0.424, 0.415, 0.384), (0.283, 0.278, 0.284),
                    'cifar10'),
        DatasetInfo('cifar100', 100, (32, 32, 3), (0.438, 0.418, 0.377), (0.300, 0.287, 0.294),
                    'cifar100'),
        DatasetInfo('svhn', 10, (32, 32, 3), (0.431, 0.430, 0.446), (0.197, 0.198, 0.199),
                    'svhn_cropped', tfds_train_split='train+extra'),
        DatasetInfo('stl10', 10, (96, 96, 3), (0.447, 0.440, 0.407), (0.260, 0.257, 0.271),
                    'stl10'),
        # scikit-learn's 8x8 digits; constants computed once from the training split
        # (pixels 0..16 mapped to uint8 by round(v * 255 / 16), examples with index % 5 != 0).
        DatasetInfo('digits', 10, (8, 8, 1), (0.3053,), (0.3762,), None),
    )
}


def dataset_info(name: str) -> DatasetInfo:
  """Info of a registry key, or of ``<key>-<variant>`` renamed to ``name`` with no TFDS source."""
  if name in DATASETS:
    return DATASETS[name]
  key, _, variant = name.partition('-')
  if key in DATASETS and variant:
    return dataclasses.replace(DATASETS[key], name=name, tfds_name=None)
  raise KeyError(
      f'unknown dataset {name!r}: known names are {sorted(DATASETS)} or <name>-<variant> '
      '(e.g. cifar10-small); for your own data use load_dataset with a <name>.npz file')
