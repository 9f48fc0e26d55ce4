"""Associated Learning on CIFAR-100 (Kao & Chen, thesis Table 3.3).

  python -m jaxlocal.main --config=configs/al_cifar100.py:cnn --config.data_dir=../shared/data

Rows as configs/al_cifar10.py, with n = 500 for ``cnn``, ``vgg`` and the ResNets (which use
L2 5e-4 and 500 epochs here). Thesis test accuracy AL / BP: ``mlp`` 31.2 / 26.9 %; ``cnn``
52.4 / 51.0 %; ``vgg`` 67.5 / 70.8 %; ``resnet20`` 60.2 / 63.8 %; ``resnet32`` 60.5 / 63.8 %.
"""

from jaxlocal.recipes import associated_rows_config

# associated_config's defaults: batch 32, Adam 1e-4 (targets 2e-4), 200 epochs, no L2.
SHARED = dict(dataset='cifar100', augment=dict(crop_padding=4, flip=True),
              associated=dict(standardize_input=True))
ROWS = {
    'mlp': dict(model='mlp', associated=dict(width=3000)),
    'cnn': dict(model='cnn', associated=dict(width=500)),
    'vgg': dict(model='vgg', weight_decay=1e-5, associated=dict(width=500)),
    'resnet20': dict(model='resnet20', weight_decay=5e-4, num_epochs=500,
                     associated=dict(width=500)),
    'resnet32': dict(model='resnet32', weight_decay=5e-4, num_epochs=500,
                     associated=dict(width=500)),
}
# '<row>_bp': the backprop baseline with these fields changed (as configs/al_cifar10.py)
BACKPROP = {
    'vgg': dict(weight_decay=5e-4),
    'resnet20': dict(learning_rate=1e-3),
    'resnet32': dict(learning_rate=1e-3),
}


def get_config(row='cnn'):
  return associated_rows_config(SHARED, ROWS, BACKPROP, row, 'configs/al_cifar100.py')
