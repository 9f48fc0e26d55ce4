"""MNIST, 2-pixel jitter, 100 epochs (Nøkland & Eidnes Table 1).

Rows (the architecture and its hyperparameters: ``ROWS`` below): mlp (3x1024), vgg8b, vgg8b_co (cutout 14), vgg11b.
The loss is one field: --config.loss=pred|sim|predsim|glob|glob+sim (default predsim).

  python -m jaxlocal.main --config=configs/mnist.py:vgg8b --config.loss=predsim --workdir=runs/mnist_vgg8b_predsim

Paper test error (%), glob / pred / sim / predsim: 3x1024 MLP 0.75 / 0.68 / 0.80 / 0.62;
VGG8B 0.26 / 0.40 / 0.65 / 0.31; VGG8B+CO predsim 0.26; VGG8B glob+sim 0.24.
"""

from jaxlocal.config_lib import base_config
from jaxlocal.recipes import rows_config

# Nøkland & Eidnes' local error signals (base_config's defaults: Adam 5e-4, batch 128, lr x 0.25
# at each milestone, beta 0.99), with this dataset's schedule and augmentation for every row.
SHARED = dict(dataset='mnist', num_epochs=100, lr_decay_milestones=(50, 75, 89, 94),
              augment=dict(crop_padding=2))
ROWS = {
    'mlp': dict(model='mlp', num_layers=3, num_hidden=1024, dropout=0.1),
    'vgg8b': dict(model='vgg8b', dropout=0.2, dim_in_decoder=1024),
    'vgg8b_co': dict(model='vgg8b', dropout=0.2, dim_in_decoder=1024, augment=dict(cutout=14)),
    'vgg11b': dict(model='vgg11b', dropout=0.2, dim_in_decoder=1024),
}


def get_config(row='vgg8b'):
  return rows_config(base_config, SHARED, ROWS, row, 'configs/mnist.py')
