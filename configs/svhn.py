"""SVHN with the extra split, no augmentation, 100 epochs (Nøkland & Eidnes Table 7).

Rows (the architecture and its hyperparameters, jaxlocal/recipes.py): mlp (3x3000), vgg8b, vgg8b_co (cutout 16), vgg11b.
The loss is one field: --config.loss=pred|sim|predsim|glob|glob+sim (default predsim).

  python -m jaxlocal.main --config=configs/svhn.py:vgg8b --config.loss=predsim --workdir=runs/svhn_vgg8b_predsim

Paper test error (%), glob / pred / sim / predsim: VGG8B 2.29 / 2.12 / 1.89 / 1.74;
VGG8B+CO predsim 1.65; VGG8B glob+sim 1.95. The TFDS source reads train+extra.
"""

from jaxlocal.recipes import local_error_config


def get_config(row=None):
  return local_error_config('svhn', row, default_row='vgg8b')
