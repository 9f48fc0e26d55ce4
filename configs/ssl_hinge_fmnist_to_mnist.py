"""Self-supervised local learning on the MNIST family (Tang, Yang & Amit 2022, §4.3), with the
offline stand-in for EMNIST → MNIST: the 3-layer encoder (conv32/64/128, each pooled and tanh)
trains on Fashion-MNIST with the contrastive hinge (m1 = 1, m2 = 1.5) on two randomly deformed views
(affine: rotation ±20°, shift ±15 %, scale 0.8–1.2, shear ±15°); the linear probe trains and
tests on MNIST. The finished probe is also tested on a deformed copy of the MNIST test set
(robustness.json: rotation ±30°, shift ±15 %, scale 0.8–1.1, shear ±20°, seeded).

  python -m jaxlocal.main --config=configs/ssl_hinge_fmnist_to_mnist.py:gll_bp --config.data_dir=../shared/data

Rows (``EXPERIMENT`` below; jaxlocal/recipes.py's ``ssl_rows_config`` names them): e2e_bp, e2e_rf, e2e_dtp, gll_bp, gll_urf, gll_rf, rll_bp, rll_urf,
rll_rf, each also with _neg5, simclr_e2e_bp, and random (the untrained encoder). The paper
reports every method, a random encoder included, above 98 % on clean MNIST. Encoder: Adam 1e-3,
400 epochs (per layer for gll and rll), batch 1000; probe: Adam 1e-3, 200 epochs.
"""

from jaxlocal.recipes import AFFINE_VIEWS, ssl_rows_config

# The experiment's fields (ssl_config's defaults otherwise); the rows name the scheme and
# update rule (jaxlocal/recipes.py: ssl_rows_config).
EXPERIMENT = dict(
    dataset='fashion_mnist', model='mnist3', augment=AFFINE_VIEWS,
    ssl=dict(m2=1.5, batch_size=1000, learning_rate=1e-3, num_epochs=400),
    probe=dict(dataset='mnist', num_epochs=200, batch_size=1000, learning_rate=1e-3,
               deform=dict(rotation=30.0, translate=0.15, scale=(0.8, 1.1), shear=20.0)),
)


def get_config(row='gll_bp'):
  return ssl_rows_config(EXPERIMENT, row, 'configs/ssl_hinge_fmnist_to_mnist.py')
