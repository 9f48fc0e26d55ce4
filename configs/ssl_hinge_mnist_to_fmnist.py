"""The reverse of configs/ssl_hinge_fmnist_to_mnist.py (same rows and recipe): the encoder
trains on MNIST, the linear probe trains and tests on Fashion-MNIST (and its deformed test set).

  python -m jaxlocal.main --config=configs/ssl_hinge_mnist_to_fmnist.py:gll_bp --config.data_dir=../shared/data
"""

from jaxlocal.recipes import AFFINE_VIEWS, ssl_rows_config

# The experiment's fields (ssl_config's defaults otherwise); the rows name the scheme and
# update rule (jaxlocal/recipes.py: ssl_rows_config).
EXPERIMENT = dict(
    dataset='mnist', model='mnist3', augment=AFFINE_VIEWS,
    ssl=dict(m2=1.5, batch_size=1000, learning_rate=1e-3, num_epochs=400),
    probe=dict(dataset='fashion_mnist', num_epochs=200, batch_size=1000, learning_rate=1e-3,
               deform=dict(rotation=30.0, translate=0.15, scale=(0.8, 1.1), shear=20.0)),
)


def get_config(row='gll_bp'):
  return ssl_rows_config(EXPERIMENT, row, 'configs/ssl_hinge_mnist_to_fmnist.py')
