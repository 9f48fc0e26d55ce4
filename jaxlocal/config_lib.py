"""The config fields every run has, with their defaults (the reference's defaults).

Config files in ``configs/`` start from :func:`base_config` and change what their experiment
needs; any field is overridable on the command line as ``--config.<field>=<value>``.
"""

from __future__ import annotations

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  """Every field a run reads. The first six are the public contract of the CLI."""
  c = ml_collections.ConfigDict()
  # --- public contract ---
  c.dataset = 'cifar10'        # registry name, '<name>-<variant>', or any <name>.npz in data_dir
  c.data_dir = ''              # folder of <name>.npz files; '' = $JAXLOCAL_DATA_DIR, then TFDS
  c.num_epochs = 400
  c.batch_size = 128
  c.seed = 1
  c.train_examples = 0         # 0 = all; N = the first N training examples (quick runs)
  # --- data ---
  c.image_size = 0             # 0 = native; N = resize every image to N×N at load time
  c.eval_batch_size = 1000
  c.augment = ml_collections.ConfigDict()
  c.augment.crop_padding = 0   # pixel jitter: zero-pad by this many pixels, random crop back
  c.augment.flip = False       # random horizontal flip
  c.augment.cutout = 0         # side of one square cutout hole (0 = off)
  # --- method ---
  c.method = 'local_error'
  c.model = 'vgg8b'            # 'mlp', 'vgg8b', 'vgg11b' or 'vgg:<w>,<w>,M,...'
  c.loss = 'predsim'           # 'pred', 'sim', 'predsim', 'glob', 'glob+sim'
  c.beta = 0.99                # predsim = (1 - beta) pred + beta sim
  c.dim_in_decoder = 4096      # largest input of a pred head (sets its average pooling)
  c.num_layers = 1             # fully connected hidden blocks (after the convs for a VGG)
  c.num_hidden = 1024          # their width
  c.feat_mult = 1.0            # conv width multiplier: the (2x) / (3x) rows
  c.nonlin = 'auto'            # 'relu', 'leakyrelu', or 'auto' (leaky with a sim loss)
  c.dropout = 0.0
  c.batch_norm = True
  # --- optimisation ---
  c.optimizer = 'adam'         # 'adam', 'amsgrad', 'sgd'
  c.learning_rate = 5e-4
  c.lr_decay_milestones = (200, 300, 350, 375)   # epochs after which lr *= lr_decay_factor
  c.lr_decay_factor = 0.25
  c.weight_decay = 0.0
  c.momentum = 0.0
  # --- bookkeeping ---
  c.checkpoints_to_keep = 2
  c.progress_bar = True
  return c
