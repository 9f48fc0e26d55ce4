"""Krotov & Hopfield (2019) on CIFAR-10: 2000 Hebbian units on unit-length images.

Paper: 49.25 % test error (train 44.95 %); end-to-end SGD of the same width 44.74 %.

  python -m jaxlocal.main --config=configs/hebbian_cifar10.py --config.data_dir=<folder with cifar10.npz>
  python -m jaxlocal.main --config=configs/hebbian_cifar10.py:quick --config.dataset=cifar10-small --config.data_dir=../shared/data

Rows (``ROWS`` below): ``paper`` (the default): p = 4, Δ = 0.3, k = 2, lr 0.02 → 0 over 100 epochs, batch 100, each image
scaled to a unit vector; top layer (``head``) n = 10, m = 6, Adam, batch 10, 500 epochs, lr 4e-3 for 100
epochs then 2e-3, 1e-3, 5e-4, 2e-4, 1e-4, 5e-5, 2e-5, 1e-5 every 50 epochs. ``quick``: 400 units,
10 + 30 epochs, batch 100 for the head. ``sgd``: 3072→2000→10 end to end (n = 1, m = 4, Adam,
batch 100, 100 epochs, 4e-3 then 1e-3 after epoch 50).
"""

from jaxlocal.config_lib import hebbian_config
from jaxlocal.recipes import rows_config

SHARED = dict(
    dataset='cifar10',
    hebbian=dict(hidden=(2000,), p=4.0, k=2, delta=0.3, lr=0.02, num_epochs=100, batch_size=100,
                 input_norm='unit'),
    head=dict(power=10.0, m=6.0, temperature=10.0,
              lr_values=(4e-3, 2e-3, 1e-3, 5e-4, 2e-4, 1e-4, 5e-5, 2e-5, 1e-5),
              lr_boundaries=(100, 150, 200, 250, 300, 350, 400, 450), num_epochs=500,
              batch_size=10),
)
ROWS = {
    'paper': dict(),
    'quick': dict(hebbian=dict(hidden=(400,), num_epochs=10),
                  head=dict(num_epochs=30, batch_size=100, lr_values=(4e-3, 1e-3),
                            lr_boundaries=(20,))),
    'sgd': dict(hebbian=dict(backprop=True),
                head=dict(power=1.0, m=4.0, lr_values=(4e-3, 1e-3), lr_boundaries=(50,),
                          num_epochs=100, batch_size=100)),
}


def get_config(row='paper'):
  return rows_config(hebbian_config, SHARED, ROWS, row, 'configs/hebbian_cifar10.py')
