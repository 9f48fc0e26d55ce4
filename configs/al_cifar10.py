"""Associated Learning on CIFAR-10 (Kao & Chen, thesis Table 3.2).

  python -m jaxlocal.main --config=configs/al_cifar10.py:cnn --config.data_dir=../shared/data
  python -m jaxlocal.main --config=configs/al_cifar10.py:cnn_bp --config.data_dir=../shared/data

Rows (``ROWS`` and ``BACKPROP`` below), thesis test accuracy AL / BP: ``mlp`` (2 × Dense 3000, n = 3000)
64.2 / 61.6 %; ``cnn`` (four blocks of two 3×3 convs, n = 256) 86.0 / 85.4 %; ``vgg`` (VGG_AL,
n = 300, L2 1e-5, no BatchNorm) 92.6 / 93.1 % (``vgg_bp``: conv-BN-ReLU, L2 5e-4, as the
thesis' BP VGG); ``resnet20`` / ``resnet32`` (the stem and three stages of 3 / 5 basic blocks
with BatchNorm, n = 300, L2 1e-4, 300 epochs) 89.3 / 90.6 % and 88.8 / 91.9 % (BP ResNets: Adam
1e-3). ``<row>_bp`` is the backprop baseline of the same prediction path. Batch 32, Adam 1e-4 (targets 2e-4), 200 epochs, ×0.1 at 40/60/80 % and ×0.5 at
90 %. Input: ±4-pixel crops and flips, then per-image standardisation (train and test). The
reference's random brightness and contrast run before that standardisation, which removes a
brightness shift exactly and a contrast scaling almost exactly, so they are left out.
"""

from jaxlocal.recipes import associated_rows_config

# associated_config's defaults: batch 32, Adam 1e-4 (targets 2e-4), 200 epochs, no L2.
SHARED = dict(dataset='cifar10', augment=dict(crop_padding=4, flip=True),
              associated=dict(standardize_input=True))
ROWS = {
    'mlp': dict(model='mlp', associated=dict(width=3000)),
    'cnn': dict(model='cnn', associated=dict(width=256)),
    'vgg': dict(model='vgg', weight_decay=1e-5, associated=dict(width=300)),
    'resnet20': dict(model='resnet20', weight_decay=1e-4, num_epochs=300,
                     associated=dict(width=300)),
    'resnet32': dict(model='resnet32', weight_decay=1e-4, num_epochs=300,
                     associated=dict(width=300)),
}
# '<row>_bp': the backprop baseline with these fields changed (the reference's BP VGG:
# BatchNorm, L2 5e-4; BP ResNets: Adam 1e-3)
BACKPROP = {
    'vgg': dict(weight_decay=5e-4),
    'resnet20': dict(learning_rate=1e-3),
    'resnet32': dict(learning_rate=1e-3),
}


def get_config(row='cnn'):
  return associated_rows_config(SHARED, ROWS, BACKPROP, row, 'configs/al_cifar10.py')
