"""Self-supervised local learning, Table 2 of Tang, Yang & Amit (2022): VGG6 on STL-10
resized to 64×64, hinge loss with the gradient block and "5 negatives" (the next 4 images,
weighted 1/5), linear probe on the 5,000 labelled training images, tested on the 8,000 test images.

  python -m jaxlocal.main --config=configs/ssl_stl10.py:e2e_bp --config.data_dir=<folder>

Paper probe accuracy: e2e_bp 70.13, e2e_rf 55.01, gll_bp 68.26 / gll_urf 68.80, gll_rf 60.00,
rll_bp 64.61, rll_rf 55.14, random 46.78. The paper trains the encoder on the 100k unlabelled
images, which the stored npz lacks: here it trains on the labelled training images. Encoder:
Adam 1e-4, 100 epochs; probe: Adam 5e-3, 200 epochs.
"""

from jaxlocal.recipes import ssl_experiment_config


def get_config(row='e2e_bp'):
  return ssl_experiment_config('stl10', row)
