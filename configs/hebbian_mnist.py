"""Krotov & Hopfield (2019) on MNIST: 2000 Hebbian units, then the tanh/|c−t|^m top layer.

Paper: 1.52 % test error (train 0.41 %); end-to-end SGD of the same width ≈ 1.5 %.

  python -m jaxlocal.main --config=configs/hebbian_mnist.py --config.data_dir=../shared/data
  python -m jaxlocal.main --config=configs/hebbian_mnist.py:quick --config.data_dir=../shared/data
  python -m jaxlocal.main --config=configs/hebbian_mnist.py:sgd --config.data_dir=../shared/data

Rows (``ROWS`` below): ``paper`` (the default), the paper's settings: p = 4, Δ = 0.4, k = 2, lr 0.04 → 0 over 100
epochs, batch 100; top layer (``head``) n = 4.5, m = 10, Adam, 300 epochs, lr 1e-3 then 5e-4, 1e-4, 5e-5,
1e-5 every 50 epochs from epoch 100. The paper gives neither the scale of the codes nor a β
inside the tanh: each example's codes are divided by its largest (``head.code_scale``) and
β = 3 (``head.temperature``); see docs/results.md for the alternatives measured. ``quick``:
400 units, 10 + 30 epochs. ``sgd``: the 784→2000→10 network with the same top layer trained
end to end by backprop.
"""

from jaxlocal.config_lib import hebbian_config
from jaxlocal.recipes import rows_config

SHARED = dict(
    dataset='mnist',
    hebbian=dict(hidden=(2000,), p=4.0, k=2, delta=0.4, lr=0.04, num_epochs=100, batch_size=100),
    head=dict(power=4.5, m=10.0, temperature=3.0, lr_values=(1e-3, 5e-4, 1e-4, 5e-5, 1e-5),
              lr_boundaries=(100, 150, 200, 250), num_epochs=300, batch_size=100),
)
ROWS = {
    'paper': dict(),
    'quick': dict(hebbian=dict(hidden=(400,), num_epochs=10),
                  head=dict(num_epochs=30, lr_boundaries=(10, 15, 20, 25))),
    'sgd': dict(hebbian=dict(backprop=True),
                head=dict(num_epochs=100, lr_boundaries=(50, 60, 70, 80))),
}


def get_config(row='paper'):
  return rows_config(hebbian_config, SHARED, ROWS, row, 'configs/hebbian_mnist.py')
