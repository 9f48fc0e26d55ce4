"""Associated Learning on CIFAR-10 (Kao & Chen, thesis Table 3.2): MLP_AL and CNN_AL.

  python -m jaxlocal.main --config=configs/al_cifar10.py:cnn --config.data_dir=../shared/data
  python -m jaxlocal.main --config=configs/al_cifar10.py:cnn_bp --config.data_dir=../shared/data

Rows: ``mlp`` (2 × Dense 3000 ELU, n = 3000; thesis 64.2 % test accuracy, BP 61.6 %) and ``cnn``
(four blocks of two 3×3 convs, n = 256; thesis 86.0 %, BP 85.4 %), ``vgg`` (VGG_AL, n = 300,
L2 1e-5, no BatchNorm; thesis 92.6 %, BP 93.1 % — the thesis' BP VGG also has BatchNorm and L2
5e-4, which the ``vgg_bp`` row here does not); ``<row>_bp`` is the backprop
baseline of the same prediction path. Batch 32, Adam 1e-4 (targets 2e-4), 200 epochs, ×0.1 at
40/60/80 % and ×0.5 at 90 %. Input: ±4-pixel crops and flips, then per-image standardisation
(train and test). The reference's random brightness and contrast run before that
standardisation, which removes a brightness shift exactly and a contrast scaling almost
exactly, so they are left out. ResNet-20/32_AL are not built yet.
"""

from jaxlocal.config_lib import associated_config

ROWS = {'mlp': dict(model='mlp', width=3000), 'cnn': dict(model='cnn', width=256),
        'vgg': dict(model='vgg', width=300, weight_decay=1e-5)}


def get_config(row='cnn'):
  """``<row>`` or ``<row>_bp`` (the backprop baseline of the same prediction path)."""
  model, _, bp = row.partition('_')
  if model not in ROWS or bp not in ('', 'bp'):
    raise ValueError(f'unknown row {row!r}; choose one of {sorted(ROWS)} or <row>_bp')
  c = associated_config()
  c.dataset = 'cifar10'
  c.model = ROWS[model]['model']
  c.associated.update(width=ROWS[model]['width'], backprop=bp == 'bp', standardize_input=True)
  c.weight_decay = ROWS[model].get('weight_decay', 0.0)
  c.augment.update(crop_padding=4, flip=True)
  return c
