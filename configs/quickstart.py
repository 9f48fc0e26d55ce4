"""predsim on scikit-learn's bundled digits (no download): a small VGG, under 2 minutes on 2 CPUs.

  python -m jaxlocal.main --config=configs/quickstart.py --workdir=runs/quickstart
"""

from jaxlocal.config_lib import base_config


def get_config():
  c = base_config()
  c.dataset = 'digits'
  c.image_size = 16
  c.model = 'vgg:32,M,64,M'
  c.num_hidden = 256
  c.loss = 'predsim'
  c.dropout = 0.1
  c.dim_in_decoder = 1024
  c.augment.crop_padding = 1
  c.num_epochs = 20
  c.batch_size = 32
  c.learning_rate = 1e-3
  c.lr_decay_milestones = (10, 15)
  return c
