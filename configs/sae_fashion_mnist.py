"""SAE-VGG on Fashion-MNIST with few labels: configs/sae_mnist.py's rows, plus flips.

  python -m jaxlocal.main --config=configs/sae_fashion_mnist.py:labels_1000 --config.data_dir=../shared/data

"""

from jaxlocal.recipes import sae_experiment_config


def get_config(row='labels_1000'):
  return sae_experiment_config('fashion_mnist', row)
