"""SAE-VGG on MNIST with few labels, the offline variant of the paper's semi-supervised runs.

  python -m jaxlocal.main --config=configs/sae_mnist.py:labels_1000 --config.data_dir=../shared/data

Rows: ``labels_100``, ``labels_1000`` (wave), ``labels_1000_sequential``, ``full``. The recipe
of configs/sae_cifar10.py with 2-pixel crops and ±10° rotations.
"""

from jaxlocal.recipes import sae_experiment_config


def get_config(row='labels_1000'):
  return sae_experiment_config('mnist', row)
