"""Associated Learning on MNIST (Kao & Chen, thesis Table 3.1): MLP_AL and CNN_AL.

  python -m jaxlocal.main --config=configs/al_mnist.py:mlp --config.data_dir=../shared/data
  python -m jaxlocal.main --config=configs/al_mnist.py:cnn --config.data_dir=../shared/data
  python -m jaxlocal.main --config=configs/al_mnist.py:mlp_bp --config.data_dir=../shared/data

Rows (``ROWS`` below): ``mlp`` (2 × Dense 1024 ELU, n = 1024; thesis 98.7 % test accuracy,
BP 98.6 %) and ``cnn`` (four blocks of two 3×3 convs, 32-32, 32-32/2, 64-64, 64-64/2, n = 256;
thesis 99.5 %, BP 99.4 %); ``<row>_bp`` is the backprop baseline: the same prediction path (MLP
1024, 1024, 5120, 1024, 1024, 10; CNN the convs then 1280, 256, 3 × 256, 10) with ReLU. Batch 32,
Adam 1e-4 (targets 2e-4), 200 epochs, ×0.1 at 40/60/80 % and ×0.5 at 90 %.
"""

from jaxlocal.recipes import associated_rows_config

# associated_config's defaults: batch 32, Adam 1e-4 (targets 2e-4), 200 epochs, no L2.
SHARED = dict(dataset='mnist')
ROWS = {
    'mlp': dict(model='mlp', associated=dict(width=1024)),
    'cnn': dict(model='cnn', associated=dict(width=256)),
}
BACKPROP = {}   # the _bp rows change nothing else


def get_config(row='mlp'):
  return associated_rows_config(SHARED, ROWS, BACKPROP, row, 'configs/al_mnist.py')
