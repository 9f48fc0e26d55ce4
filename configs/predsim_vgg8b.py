"""VGG8B trained with predsim on CIFAR-10: the paper's recipe (Nøkland & Eidnes Table 4, 5.58 %).

Adam 5e-4, batch 128, dropout 0.2, LeakyReLU, pred heads of at most 2048 inputs, β = 0.99,
400 epochs with lr × 0.25 after epochs 200, 300, 350, 375; crops + flips.

  python -m jaxlocal.main --config=configs/predsim_vgg8b.py --workdir=runs/predsim_vgg8b

Needs cifar10.npz in --config.data_dir (or $JAXLOCAL_DATA_DIR), or TFDS's cifar10 prepared.
"""

from jaxlocal.recipes import config_file


def get_config():
  config = config_file('cifar10', 'vgg8b')  # the row of configs/cifar10.py
  config.loss = 'predsim'
  return config
