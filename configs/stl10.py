"""STL-10 (96 px, first conv 7x7 stride 2), no augmentation, 400 epochs (Table 8).

Rows (the architecture and its hyperparameters: ``ROWS`` below): mlp (3x3000), vgg8b, vgg8b_co (cutout 48), vgg11b.
The loss is one field: --config.loss=pred|sim|predsim|glob|glob+sim (default predsim).

  python -m jaxlocal.main --config=configs/stl10.py:vgg8b --config.loss=predsim --workdir=runs/stl10_vgg8b_predsim

Paper test error (%), glob / pred / sim / predsim: VGG8B 33.1 / 26.83 / 23.15 / 20.51;
VGG8B+CO predsim 19.25; VGG8B glob+sim 25.6.
"""

from jaxlocal.config_lib import base_config
from jaxlocal.recipes import rows_config

# Nøkland & Eidnes' local error signals (base_config's defaults: Adam 5e-4, batch 128, lr x 0.25
# at each milestone, beta 0.99), with this dataset's schedule and augmentation for every row.
SHARED = dict(dataset='stl10', num_epochs=400, lr_decay_milestones=(200, 300, 350, 375),
              augment=dict())
ROWS = {
    'mlp': dict(model='mlp', num_layers=3, num_hidden=3000, dropout=0.1),
    'vgg8b': dict(model='vgg8b', dropout=0.1, dim_in_decoder=2048),
    'vgg8b_co': dict(model='vgg8b', dropout=0.1, dim_in_decoder=2048, augment=dict(cutout=48)),
    'vgg11b': dict(model='vgg11b', dropout=0.1, dim_in_decoder=2048),
}


def get_config(row='vgg8b'):
  return rows_config(base_config, SHARED, ROWS, row, 'configs/stl10.py')
