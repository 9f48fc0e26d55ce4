"""CIFAR-100, crops + flips, 400 epochs (Nøkland & Eidnes Table 6).

Rows (the architecture and its hyperparameters: ``ROWS`` below): mlp (3x3000), vgg8b, vgg11b, vgg11b_2x, vgg11b_3x.
The loss is one field: --config.loss=pred|sim|predsim|glob|glob+sim (default predsim).

  python -m jaxlocal.main --config=configs/cifar100.py:vgg8b --config.loss=predsim --workdir=runs/cifar100_vgg8b_predsim

Paper test error (%), glob / pred / sim / predsim: 3x3000 MLP 62.6 / 58.9 / 62.5 / 56.9;
VGG8B 26.2 / 29.3 / 32.6 / 24.1; VGG11B 25.2 / 29.6 / 30.8 / 24.1; VGG11B(2x) 23.4 / 26.9 / 28.0 /
21.2; VGG11B(3x) 23.7 / 25.9 / 28.0 / 20.1; VGG11B glob+sim 22.2. The reference's sim/predsim
runs also restrict batches to 20 classes until epoch 200 (not implemented here yet).
"""

from jaxlocal.config_lib import base_config
from jaxlocal.recipes import rows_config

# Nøkland & Eidnes' local error signals (base_config's defaults: Adam 5e-4, batch 128, lr x 0.25
# at each milestone, beta 0.99), with this dataset's schedule and augmentation for every row.
# sim and predsim in the reference add --classes-per-batch 20 until epoch 200; pred and glob
# runs turn it off with --config.classes_per_batch=0 (configs/README.md).
SHARED = dict(dataset='cifar100', num_epochs=400, lr_decay_milestones=(200, 300, 350, 375),
              augment=dict(crop_padding=4, flip=True),
              classes_per_batch=20, classes_per_batch_until_epoch=200)
ROWS = {
    'mlp': dict(model='mlp', num_layers=3, num_hidden=3000, dropout=0.025),
    'vgg8b': dict(model='vgg8b', dropout=0.05),
    'vgg11b': dict(model='vgg11b', dropout=0.05),
    'vgg11b_2x': dict(model='vgg11b', dropout=0.1, learning_rate=3e-4, feat_mult=2),
    'vgg11b_3x': dict(model='vgg11b', dropout=0.15, learning_rate=3e-4, feat_mult=3),
}


def get_config(row='vgg8b'):
  return rows_config(base_config, SHARED, ROWS, row, 'configs/cifar100.py')
