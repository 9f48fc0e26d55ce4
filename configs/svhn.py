"""SVHN with the extra split, no augmentation, 100 epochs (Nøkland & Eidnes Table 7).

Rows (the architecture and its hyperparameters: ``ROWS`` below): mlp (3x3000), vgg8b, vgg8b_co (cutout 16), vgg11b.
The loss is one field: --config.loss=pred|sim|predsim|glob|glob+sim (default predsim).

  python -m jaxlocal.main --config=configs/svhn.py:vgg8b --config.loss=predsim --workdir=runs/svhn_vgg8b_predsim

Paper test error (%), glob / pred / sim / predsim: VGG8B 2.29 / 2.12 / 1.89 / 1.74;
VGG8B+CO predsim 1.65; VGG8B glob+sim 1.95. The TFDS source reads train+extra.
"""

from jaxlocal.config_lib import base_config
from jaxlocal.recipes import rows_config

# Nøkland & Eidnes' local error signals (base_config's defaults: Adam 5e-4, batch 128, lr x 0.25
# at each milestone, beta 0.99), with this dataset's schedule and augmentation for every row.
SHARED = dict(dataset='svhn', num_epochs=100, lr_decay_milestones=(50, 75, 89, 94),
              augment=dict())
ROWS = {
    'mlp': dict(model='mlp', num_layers=3, num_hidden=3000, dropout=0.1),
    'vgg8b': dict(model='vgg8b', dropout=0.3, learning_rate=3e-4, dim_in_decoder=2048),
    'vgg8b_co': dict(model='vgg8b', dropout=0.15, learning_rate=3e-4, dim_in_decoder=2048,
                     augment=dict(cutout=16)),
    'vgg11b': dict(model='vgg11b', dropout=0.3, learning_rate=3e-4, dim_in_decoder=2048),
}


def get_config(row='vgg8b'):
  return rows_config(base_config, SHARED, ROWS, row, 'configs/svhn.py')
