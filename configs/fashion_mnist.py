"""Fashion-MNIST, 2-pixel jitter + flips, 200 epochs (Nøkland & Eidnes Table 2).

Rows (the architecture and its hyperparameters, jaxlocal/recipes.py): mlp (3x1024), vgg8b, vgg8b_2x, vgg8b_2x_co (cutout 14), vgg11b.
The loss is one field: --config.loss=pred|sim|predsim|glob|glob+sim (default predsim).

  python -m jaxlocal.main --config=configs/fashion_mnist.py:vgg8b --config.loss=predsim --workdir=runs/fashion_mnist_vgg8b_predsim

Paper test error (%), glob / pred / sim / predsim: 3x1024 MLP 8.37 / 8.60 / 9.70 / 8.54;
VGG8B 4.53 / 5.66 / 5.12 / 4.65; VGG8B(2x) 4.55 / 5.11 / 4.92 / 4.33; 8B(2x)+CO predsim 4.14;
VGG8B glob+sim 4.16.
"""

from jaxlocal.recipes import local_error_config


def get_config(row=None):
  return local_error_config('fashion_mnist', row, default_row='vgg8b')
