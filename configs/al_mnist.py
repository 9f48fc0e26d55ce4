"""Associated Learning on MNIST (Kao & Chen, thesis Table 3.1): MLP_AL and CNN_AL.

  python -m jaxlocal.main --config=configs/al_mnist.py:mlp --config.data_dir=../shared/data
  python -m jaxlocal.main --config=configs/al_mnist.py:cnn --config.data_dir=../shared/data
  python -m jaxlocal.main --config=configs/al_mnist.py:mlp_bp --config.data_dir=../shared/data

Rows: ``mlp`` (2 × Dense 1024 ELU, n = 1024; thesis 98.7 % test accuracy, BP 98.6 %) and
``cnn`` (four blocks of two 3×3 convs, 32-32, 32-32/2, 64-64, 64-64/2, n = 256; thesis 99.5 %,
BP 99.4 %); ``<row>_bp`` is the backprop baseline: the same prediction path (MLP 1024, 1024,
5120, 1024, 1024, 10; CNN the convs then 1280, 256, 3 × 256, 10) with ReLU. Batch 32, Adam 1e-4 (targets 2e-4), 200 epochs, ×0.1 at 40/60/80 % and ×0.5 at 90 %.
"""

from jaxlocal.config_lib import associated_config

ROWS = {'mlp': dict(model='mlp', width=1024), 'cnn': dict(model='cnn', width=256)}


def get_config(row='mlp'):
  """``<row>`` or ``<row>_bp`` (the backprop baseline of the same prediction path)."""
  model, _, bp = row.partition('_')
  if model not in ROWS or bp not in ('', 'bp'):
    raise ValueError(f'unknown row {row!r}; choose one of {sorted(ROWS)} or <row>_bp')
  c = associated_config()
  c.model = ROWS[model]['model']
  c.associated.width = ROWS[model]['width']
  c.associated.backprop = bp == 'bp'
  return c
