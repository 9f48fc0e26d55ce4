"""CIFAR-10, crops + flips, 400 epochs (Nøkland & Eidnes Table 4).

Rows (the architecture and its hyperparameters: ``ROWS`` below): mlp (3x3000), vgg8b, vgg11b, vgg11b_2x, vgg11b_3x, vgg11b_3x_co (cutout 16).
The loss is one field: --config.loss=pred|sim|predsim|glob|glob+sim (default predsim).

  python -m jaxlocal.main --config=configs/cifar10.py:vgg8b --config.loss=predsim --workdir=runs/cifar10_vgg8b_predsim

Paper test error (%), glob / pred / sim / predsim: 3x3000 MLP 33.6 / 32.3 / 33.5 / 30.9;
VGG8B 5.99 / 8.40 / 7.16 / 5.58; VGG11B 5.56 / 8.39 / 6.70 / 5.30; VGG11B(2x) 4.91 / 7.30 / 6.66 /
4.42; VGG11B(3x) 5.02 / 7.37 / 9.34 / 3.97; 11B(3x)+CO predsim 3.60; VGG11B glob+sim 4.33.
"""

from jaxlocal.config_lib import base_config
from jaxlocal.recipes import rows_config

# Nøkland & Eidnes' local error signals (base_config's defaults: Adam 5e-4, batch 128, lr x 0.25
# at each milestone, beta 0.99), with this dataset's schedule and augmentation for every row.
SHARED = dict(dataset='cifar10', num_epochs=400, lr_decay_milestones=(200, 300, 350, 375),
              augment=dict(crop_padding=4, flip=True))
ROWS = {
    'mlp': dict(model='mlp', num_layers=3, num_hidden=3000, dropout=0.1),
    'vgg8b': dict(model='vgg8b', dropout=0.2, dim_in_decoder=2048),
    'vgg11b': dict(model='vgg11b', dropout=0.2, dim_in_decoder=2048),
    'vgg11b_2x': dict(model='vgg11b', dropout=0.25, learning_rate=3e-4, feat_mult=2),
    'vgg11b_3x': dict(model='vgg11b', dropout=0.3, learning_rate=3e-4, feat_mult=3),
    'vgg11b_3x_co': dict(model='vgg11b', dropout=0.3, learning_rate=3e-4, feat_mult=3,
                         augment=dict(cutout=16)),
    # Table 5, no backprop: --bio --num-layers 1, beta 0.01 for predsim, default dim-in-decoder
    'vgg8b_bpf': dict(model='vgg8b', dropout=0.05, bpf=True, beta=0.01),
    'vgg8b_2x_bpf': dict(model='vgg8b', dropout=0.1, learning_rate=3e-4, feat_mult=2, bpf=True,
                         beta=0.01),
}


def get_config(row='vgg8b'):
  return rows_config(base_config, SHARED, ROWS, row, 'configs/cifar10.py')
