"""Semi-supervised local training of VGG layer-stages with supervised autoencoders (Theiler,
Oktay & Frey), CIFAR-10.

  python -m jaxlocal.main --config=configs/sae_cifar10.py --config.data_dir=../shared/data

Rows (``ROWS`` below), paper test error (%) with the mean prediction: ``base`` (type C,
4000 labels, wave, dropout 0.1; Table IV: VGG 21.9 / last SAE 22.4 / mean 20.9), ``type_a`` 20.0,
``type_b`` 20.6 (Table VI), ``labels_5000`` 18.9, ``labels_10000`` 15.1, ``labels_20000`` 13.6
(Table V), ``full`` (every label, batch 126; Table II: 9.10), ``sequential`` (the base with
sequential training, Fig. 6). Adam, batch 64, 9 blocks × 25 epochs, stage learning rates 8e-4 …
1.6e-4, 1e-4 for the FC layers; crops, flips, ±10° rotations and colour jitter.
"""

from jaxlocal.config_lib import sae_config
from jaxlocal.recipes import rows_config

# sae_config's defaults are the paper's base configuration on CIFAR-10.
SHARED = dict(dataset='cifar10')
ROWS = {
    'base': dict(),
    'type_a': dict(sae=dict(type='A')),
    'type_b': dict(sae=dict(type='B')),
    'labels_5000': dict(sae=dict(num_labels=5000)),
    'labels_10000': dict(sae=dict(num_labels=10000)),
    'labels_20000': dict(sae=dict(num_labels=20000)),
    'sequential': dict(sae=dict(schedule='sequential')),
    'full': dict(batch_size=126, sae=dict(num_labels=0)),
}


def get_config(row='base'):
  return rows_config(sae_config, SHARED, ROWS, row, 'configs/sae_cifar10.py')
