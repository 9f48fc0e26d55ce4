"""Associated Learning on CIFAR-100 (Kao & Chen, thesis Table 3.3).

  python -m jaxlocal.main --config=configs/al_cifar100.py:cnn --config.data_dir=../shared/data

Rows as configs/al_cifar10.py, with n = 500 for ``cnn``, ``vgg`` and the ResNets (which use
L2 5e-4 and 500 epochs here). Thesis test accuracy AL / BP: ``mlp`` 31.2 / 26.9 %; ``cnn``
52.4 / 51.0 %; ``vgg`` 67.5 / 70.8 %; ``resnet20`` 60.2 / 63.8 %; ``resnet32`` 60.5 / 63.8 %.
"""

from jaxlocal.recipes import associated_learning_config


def get_config(row='cnn'):
  return associated_learning_config('cifar100', row)
