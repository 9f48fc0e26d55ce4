"""Self-supervised local learning, Table 2 of Tang, Yang & Amit (2022): VGG6 on STL-10
resized to 64×64, hinge loss with the gradient block and "5 negatives" (the next 4 images,
weighted 1/5), linear probe on the 5,000 labelled training images, tested on the 8,000 test images.

  python -m jaxlocal.main --config=configs/ssl_stl10.py:e2e_bp --config.data_dir=<folder>

Paper probe accuracy: e2e_bp 70.13, e2e_rf 55.01, gll_bp 68.26 / gll_urf 68.80, gll_rf 60.00,
rll_bp 64.61, rll_rf 55.14, random 46.78. The paper trains the encoder on the 100k unlabelled
images, which the stored npz lacks: here it trains on the labelled training images. Encoder:
Adam 1e-4, 100 epochs; probe: Adam 5e-3, 200 epochs.
"""

from jaxlocal.recipes import SIMCLR_VIEWS, ssl_rows_config

# The experiment's fields (ssl_config's defaults otherwise); the rows name the scheme and
# update rule (jaxlocal/recipes.py: ssl_rows_config). Every row has the gradient block and the
# "5 negatives" (the next 4 images, weighted 1/5).
EXPERIMENT = dict(
    dataset='stl10', model='vgg6', image_size=64, augment=SIMCLR_VIEWS,
    ssl=dict(m2=3.0, batch_size=500, learning_rate=1e-4, num_epochs=100, negatives=4,
             negative_weight=0.2, grad_block=True),
    probe=dict(dataset='', num_epochs=200, batch_size=500, learning_rate=5e-3),
)


def get_config(row='e2e_bp'):
  return ssl_rows_config(EXPERIMENT, row, 'configs/ssl_stl10.py')
