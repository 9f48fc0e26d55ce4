"""MNIST, 2-pixel jitter, 100 epochs (Nøkland & Eidnes Table 1).

Rows (the architecture and its hyperparameters, jaxlocal/recipes.py): mlp (3x1024), vgg8b, vgg8b_co (cutout 14), vgg11b.
The loss is one field: --config.loss=pred|sim|predsim|glob|glob+sim (default predsim).

  python -m jaxlocal.main --config=configs/mnist.py:vgg8b --config.loss=predsim --workdir=runs/mnist_vgg8b_predsim

Paper test error (%), glob / pred / sim / predsim: 3x1024 MLP 0.75 / 0.68 / 0.80 / 0.62;
VGG8B 0.26 / 0.40 / 0.65 / 0.31; VGG8B+CO predsim 0.26; VGG8B glob+sim 0.24.
"""

from jaxlocal.recipes import local_error_config


def get_config(row=None):
  return local_error_config('mnist', row, default_row='vgg8b')
