"""Fashion-MNIST, 2-pixel jitter + flips, 200 epochs (Nøkland & Eidnes Table 2).

Rows (the architecture and its hyperparameters: ``ROWS`` below): mlp (3x1024), vgg8b, vgg8b_2x, vgg8b_2x_co (cutout 14), vgg11b.
The loss is one field: --config.loss=pred|sim|predsim|glob|glob+sim (default predsim).

  python -m jaxlocal.main --config=configs/fashion_mnist.py:vgg8b --config.loss=predsim --workdir=runs/fashion_mnist_vgg8b_predsim

Paper test error (%), glob / pred / sim / predsim: 3x1024 MLP 8.37 / 8.60 / 9.70 / 8.54;
VGG8B 4.53 / 5.66 / 5.12 / 4.65; VGG8B(2x) 4.55 / 5.11 / 4.92 / 4.33; 8B(2x)+CO predsim 4.14;
VGG8B glob+sim 4.16.
"""

from jaxlocal.config_lib import base_config
from jaxlocal.recipes import rows_config

# Nøkland & Eidnes' local error signals (base_config's defaults: Adam 5e-4, batch 128, lr x 0.25
# at each milestone, beta 0.99), with this dataset's schedule and augmentation for every row.
SHARED = dict(dataset='fashion_mnist', num_epochs=200, lr_decay_milestones=(100, 150, 175, 188),
              augment=dict(crop_padding=2, flip=True))
ROWS = {
    'mlp': dict(model='mlp', num_layers=3, num_hidden=1024, dropout=0.025),
    'vgg8b': dict(model='vgg8b', dropout=0.1, dim_in_decoder=1024),
    'vgg8b_2x': dict(model='vgg8b', dropout=0.2, learning_rate=3e-4, feat_mult=2),
    'vgg8b_2x_co': dict(model='vgg8b', dropout=0.2, learning_rate=3e-4, feat_mult=2,
                        augment=dict(cutout=14)),
    'vgg11b': dict(model='vgg11b', dropout=0.1, dim_in_decoder=1024),
}


def get_config(row='vgg8b'):
  return rows_config(base_config, SHARED, ROWS, row, 'configs/fashion_mnist.py')
