"""CIFAR-10, crops + flips, 400 epochs (Nøkland & Eidnes Table 4).

Rows (the architecture and its hyperparameters, jaxlocal/recipes.py): mlp (3x3000), vgg8b, vgg11b, vgg11b_2x, vgg11b_3x, vgg11b_3x_co (cutout 16).
The loss is one field: --config.loss=pred|sim|predsim|glob|glob+sim (default predsim).

  python -m jaxlocal.main --config=configs/cifar10.py:vgg8b --config.loss=predsim --workdir=runs/cifar10_vgg8b_predsim

Paper test error (%), glob / pred / sim / predsim: 3x3000 MLP 33.6 / 32.3 / 33.5 / 30.9;
VGG8B 5.99 / 8.40 / 7.16 / 5.58; VGG11B 5.56 / 8.39 / 6.70 / 5.30; VGG11B(2x) 4.91 / 7.30 / 6.66 /
4.42; VGG11B(3x) 5.02 / 7.37 / 9.34 / 3.97; 11B(3x)+CO predsim 3.60; VGG11B glob+sim 4.33.
"""

from jaxlocal.recipes import local_error_config


def get_config(row=None):
  return local_error_config('cifar10', row, default_row='vgg8b')
