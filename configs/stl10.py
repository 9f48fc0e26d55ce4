"""STL-10 (96 px, first conv 7x7 stride 2), no augmentation, 400 epochs (Table 8).

Rows (the architecture and its hyperparameters, jaxlocal/recipes.py): mlp (3x3000), vgg8b, vgg8b_co (cutout 48), vgg11b.
The loss is one field: --config.loss=pred|sim|predsim|glob|glob+sim (default predsim).

  python -m jaxlocal.main --config=configs/stl10.py:vgg8b --config.loss=predsim --workdir=runs/stl10_vgg8b_predsim

Paper test error (%), glob / pred / sim / predsim: VGG8B 33.1 / 26.83 / 23.15 / 20.51;
VGG8B+CO predsim 19.25; VGG8B glob+sim 25.6.
"""

from jaxlocal.recipes import local_error_config


def get_config(row=None):
  return local_error_config('stl10', row, default_row='vgg8b')
