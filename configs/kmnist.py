"""Kuzushiji-MNIST, no augmentation, 100 epochs (Nøkland & Eidnes Table 3).

Rows (the architecture and its hyperparameters, jaxlocal/recipes.py): mlp (3x1024), vgg8b, vgg8b_co (cutout 14), vgg11b.
The loss is one field: --config.loss=pred|sim|predsim|glob|glob+sim (default predsim).

  python -m jaxlocal.main --config=configs/kmnist.py:vgg8b --config.loss=predsim --workdir=runs/kmnist_vgg8b_predsim

Paper test error (%), glob / pred / sim / predsim: 3x1024 MLP 5.99 / 7.26 / 9.80 / 7.33;
VGG8B 1.53 / 2.22 / 2.19 / 1.36; VGG8B+CO predsim 0.99; VGG8B glob+sim 1.13.
"""

from jaxlocal.recipes import local_error_config


def get_config(row=None):
  return local_error_config('kmnist', row, default_row='vgg8b')
