"""SAE-VGG on CIFAR-100 (Theiler, Oktay & Frey, Tables II–III): ``base`` with 10,000 labels
(paper 48 % error), ``full`` with every label (30.6 %). See configs/sae_cifar10.py.

  python -m jaxlocal.main --config=configs/sae_cifar100.py --config.data_dir=<folder>
"""

from jaxlocal.config_lib import sae_config
from jaxlocal.recipes import rows_config

SHARED = dict(dataset='cifar100')
ROWS = {
    'base': dict(sae=dict(num_labels=10000)),
    'full': dict(batch_size=126, sae=dict(num_labels=0)),
}


def get_config(row='base'):
  return rows_config(sae_config, SHARED, ROWS, row, 'configs/sae_cifar100.py')
