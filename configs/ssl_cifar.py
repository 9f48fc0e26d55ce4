"""Self-supervised local learning, Table 1 of Tang, Yang & Amit (2022): CONV6 trained on
CIFAR-100 by a two-view loss, linear probe on CIFAR-10.

  python -m jaxlocal.main --config=configs/ssl_cifar.py:gll_bp --config.data_dir=../shared/data

Rows (``EXPERIMENT`` below and jaxlocal/recipes.py's ``ssl_rows_config``; ``_neg5``: gradient block and the next 4 images as negatives, each
weighted 1/5), paper probe accuracy: e2e_bp 71.44 (neg5 70.35), e2e_dtp 71.29 (67.74), e2e_rf
61.70 (63.61), gll_bp and gll_urf 72.76 (71.14), gll_rf 67.83 (66.52), rll_bp and rll_urf 71.35
(71.17), rll_rf 65.94 (65.49), simclr_e2e_bp 72.44, random 61.23; e2e_dtp_stride (strided
convolutions instead of max-pooling) 39.42. Encoder: Adam 1e-4, 400 epochs
(per layer for gll and rll), batch 500, hinge m1 = 1, m2 = 3; probe: Adam 1e-3, 400 epochs.
Views: random resized crops (scale 0.2–1), flips, colour jitter (p 0.8), grayscale (p 0.2).
For the offline sanity run: --config.dataset=cifar10-small --config.probe.dataset=''.
"""

from jaxlocal.recipes import SIMCLR_VIEWS, ssl_rows_config

# The experiment's fields (ssl_config's defaults otherwise); the rows name the scheme and
# update rule (jaxlocal/recipes.py: ssl_rows_config).
EXPERIMENT = dict(
    dataset='cifar100', model='conv6', augment=SIMCLR_VIEWS,
    ssl=dict(m2=3.0, batch_size=500, learning_rate=1e-4, num_epochs=400),
    probe=dict(dataset='cifar10', num_epochs=400, batch_size=500, learning_rate=1e-3,
               deform=dict(rotation=15.0, translate=0.1, brightness=0.3, contrast=0.3)),
)


def get_config(row='gll_bp'):
  return ssl_rows_config(EXPERIMENT, row, 'configs/ssl_cifar.py')
