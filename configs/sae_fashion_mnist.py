"""SAE-VGG on Fashion-MNIST with few labels: configs/sae_mnist.py's rows, plus flips.

  python -m jaxlocal.main --config=configs/sae_fashion_mnist.py:labels_1000 --config.data_dir=../shared/data

"""

from jaxlocal.config_lib import sae_config
from jaxlocal.recipes import rows_config

# sae_config's recipe with 2-pixel crops, flips and ±10° rotations (no colour jitter)
SHARED = dict(dataset='fashion_mnist',
              augment=dict(crop_padding=2, flip=True, rotation=10.0, brightness=0.0,
                           contrast=0.0, saturation=0.0))
ROWS = {
    'labels_100': dict(sae=dict(num_labels=100)),
    'labels_1000': dict(sae=dict(num_labels=1000)),
    'labels_1000_sequential': dict(sae=dict(num_labels=1000, schedule='sequential')),
    'full': dict(sae=dict(num_labels=0)),
}


def get_config(row='labels_1000'):
  return rows_config(sae_config, SHARED, ROWS, row, 'configs/sae_fashion_mnist.py')
