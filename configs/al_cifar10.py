"""Associated Learning on CIFAR-10 (Kao & Chen, thesis Table 3.2).

  python -m jaxlocal.main --config=configs/al_cifar10.py:cnn --config.data_dir=../shared/data
  python -m jaxlocal.main --config=configs/al_cifar10.py:cnn_bp --config.data_dir=../shared/data

Rows (jaxlocal/recipes.py), thesis test accuracy AL / BP: ``mlp`` (2 × Dense 3000, n = 3000)
64.2 / 61.6 %; ``cnn`` (four blocks of two 3×3 convs, n = 256) 86.0 / 85.4 %; ``vgg`` (VGG_AL,
n = 300, L2 1e-5, no BatchNorm) 92.6 / 93.1 % (``vgg_bp``: conv-BN-ReLU, L2 5e-4, as the
thesis' BP VGG); ``resnet20`` / ``resnet32`` (the stem and three stages of 3 / 5 basic blocks
with BatchNorm, n = 300, L2 1e-4, 300 epochs) 89.3 / 90.6 % and 88.8 / 91.9 % (BP ResNets: Adam
1e-3). ``<row>_bp`` is the backprop baseline of the same prediction path. Batch 32, Adam 1e-4 (targets 2e-4), 200 epochs, ×0.1 at 40/60/80 % and ×0.5 at
90 %. Input: ±4-pixel crops and flips, then per-image standardisation (train and test). The
reference's random brightness and contrast run before that standardisation, which removes a
brightness shift exactly and a contrast scaling almost exactly, so they are left out.
"""

from jaxlocal.recipes import associated_learning_config


def get_config(row='cnn'):
  return associated_learning_config('cifar10', row)
