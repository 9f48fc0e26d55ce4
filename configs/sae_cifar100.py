"""SAE-VGG on CIFAR-100 (Theiler, Oktay & Frey, Tables II–III): ``base`` with 10,000 labels
(paper 48 % error), ``full`` with every label (30.6 %). See configs/sae_cifar10.py.

  python -m jaxlocal.main --config=configs/sae_cifar100.py --config.data_dir=<folder>
"""

from jaxlocal.recipes import sae_experiment_config


def get_config(row='base'):
  return sae_experiment_config('cifar100', row)
