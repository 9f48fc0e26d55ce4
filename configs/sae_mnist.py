"""SAE-VGG on MNIST with few labels, the offline variant of the paper's semi-supervised runs.

  python -m jaxlocal.main --config=configs/sae_mnist.py:labels_1000 --config.data_dir=../shared/data

Rows: ``labels_100``, ``labels_1000`` (wave), ``labels_1000_sequential``, ``full``. The recipe
of configs/sae_cifar10.py with 2-pixel crops and ±10° rotations.
"""

from jaxlocal.config_lib import sae_config
from jaxlocal.recipes import rows_config

# sae_config's recipe with 2-pixel crops and ±10° rotations (no flips, no colour jitter)
SHARED = dict(dataset='mnist',
              augment=dict(crop_padding=2, flip=False, rotation=10.0, brightness=0.0,
                           contrast=0.0, saturation=0.0))
ROWS = {
    'labels_100': dict(sae=dict(num_labels=100)),
    'labels_1000': dict(sae=dict(num_labels=1000)),
    'labels_1000_sequential': dict(sae=dict(num_labels=1000, schedule='sequential')),
    'full': dict(sae=dict(num_labels=0)),
}


def get_config(row='labels_1000'):
  return rows_config(sae_config, SHARED, ROWS, row, 'configs/sae_mnist.py')
