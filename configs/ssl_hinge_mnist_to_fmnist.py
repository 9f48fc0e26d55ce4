"""The reverse of configs/ssl_hinge_fmnist_to_mnist.py (same rows and recipe): the encoder
trains on MNIST, the linear probe trains and tests on Fashion-MNIST (and its deformed test set).

  python -m jaxlocal.main --config=configs/ssl_hinge_mnist_to_fmnist.py:gll_bp --config.data_dir=../shared/data
"""

from jaxlocal.recipes import ssl_experiment_config


def get_config(row='gll_bp'):
  return ssl_experiment_config('hinge_mnist_to_fmnist', row)
