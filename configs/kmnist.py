"""Kuzushiji-MNIST, no augmentation, 100 epochs (Nøkland & Eidnes Table 3).

Rows (the architecture and its hyperparameters: ``ROWS`` below): mlp (3x1024), vgg8b, vgg8b_co (cutout 14), vgg11b.
The loss is one field: --config.loss=pred|sim|predsim|glob|glob+sim (default predsim).

  python -m jaxlocal.main --config=configs/kmnist.py:vgg8b --config.loss=predsim --workdir=runs/kmnist_vgg8b_predsim

Paper test error (%), glob / pred / sim / predsim: 3x1024 MLP 5.99 / 7.26 / 9.80 / 7.33;
VGG8B 1.53 / 2.22 / 2.19 / 1.36; VGG8B+CO predsim 0.99; VGG8B glob+sim 1.13.
"""

from jaxlocal.config_lib import base_config
from jaxlocal.recipes import rows_config

# Nøkland & Eidnes' local error signals (base_config's defaults: Adam 5e-4, batch 128, lr x 0.25
# at each milestone, beta 0.99), with this dataset's schedule and augmentation for every row.
SHARED = dict(dataset='kmnist', num_epochs=100, lr_decay_milestones=(50, 75, 89, 94),
              augment=dict())
ROWS = {
    'mlp': dict(model='mlp', num_layers=3, num_hidden=1024, dropout=0.2),
    'vgg8b': dict(model='vgg8b', dropout=0.3, dim_in_decoder=1024),
    'vgg8b_co': dict(model='vgg8b', dropout=0.15, dim_in_decoder=1024, augment=dict(cutout=14)),
    'vgg11b': dict(model='vgg11b', dropout=0.3, dim_in_decoder=1024),
}


def get_config(row='vgg8b'):
  return rows_config(base_config, SHARED, ROWS, row, 'configs/kmnist.py')
