"""CIFAR-100, crops + flips, 400 epochs (Nøkland & Eidnes Table 6).

Rows (the architecture and its hyperparameters, jaxlocal/recipes.py): mlp (3x3000), vgg8b, vgg11b, vgg11b_2x, vgg11b_3x.
The loss is one field: --config.loss=pred|sim|predsim|glob|glob+sim (default predsim).

  python -m jaxlocal.main --config=configs/cifar100.py:vgg8b --config.loss=predsim --workdir=runs/cifar100_vgg8b_predsim

Paper test error (%), glob / pred / sim / predsim: 3x3000 MLP 62.6 / 58.9 / 62.5 / 56.9;
VGG8B 26.2 / 29.3 / 32.6 / 24.1; VGG11B 25.2 / 29.6 / 30.8 / 24.1; VGG11B(2x) 23.4 / 26.9 / 28.0 /
21.2; VGG11B(3x) 23.7 / 25.9 / 28.0 / 20.1; VGG11B glob+sim 22.2. The reference's sim/predsim
runs also restrict batches to 20 classes until epoch 200 (not implemented here yet).
"""

from jaxlocal.recipes import local_error_config


def get_config(row=None):
  return local_error_config('cifar100', row, default_row='vgg8b')
