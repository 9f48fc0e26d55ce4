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
  c.classes_per_batch = 0      # > 0: batches drawn from about this many classes (CIFAR-100 sim)
  c.classes_per_batch_until_epoch = 0   # ... during the first epochs only (0 = all epochs)
  # --- method ---
  c.method = 'local_error'
  c.model = 'vgg8b'            # 'mlp', 'vgg8b', 'vgg11b' or 'vgg:<w>,<w>,M,...'
  c.loss = 'predsim'           # 'pred', 'sim', 'predsim', 'glob', 'glob+sim'
  c.beta = 0.99                # predsim = (1 - beta) pred + beta sim
  c.dim_in_decoder = 4096      # largest input of a pred head (sets its average pooling)
  c.bpf = False                # backprop-free local losses (feedback alignment, label codes)
  c.target_proj_size = 128     # bpf: length of the random label codes
  c.num_layers = 1             # fully connected hidden blocks (after the convs for a VGG)
  c.num_hidden = 1024          # their width
  c.feat_mult = 1.0            # conv width multiplier: the (2x) / (3x) rows
  c.nonlin = 'auto'            # 'relu', 'leakyrelu', or 'auto' (leaky with a sim loss)
  c.dropout = 0.0
  c.batch_norm = True
  c.freeze_hidden = False      # True: random, frozen hidden blocks; only the output layer trains
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


def hebbian_config() -> ml_collections.ConfigDict:
  """The fields of Krotov & Hopfield's method (``method='hebbian'``) with the paper's MNIST
  defaults; ``num_epochs`` / ``batch_size`` are the supervised top layer's."""
  c = base_config()
  c.method = 'hebbian'
  c.hebbian = ml_collections.ConfigDict(dict(
      hidden=(2000,),       # widths of stacked Hebbian layers, each trained on the codes below
      rule='ranking',       # 'ranking' (fast approximation) or 'exact' (inhibition dynamics)
      p=4.0, k=2, delta=0.4, lr=0.04, num_epochs=100, batch_size=100, prec=1e-30,
      init_std=1.0,         # W ~ Normal(0, init_std)
      w_inh=0.5, h_star=0.5, tol=1e-6,   # 'exact' rule: inhibition in [0, 1), threshold h*
      input_norm='none',    # 'unit': each image scaled to length 1 (the CIFAR recipe)
      code_power=1.0,       # codes passed to a stacked layer: relu(W v)^code_power
      backprop=False,       # True: the same-width network trained end to end (SGD baseline)
  ))
  c.head = ml_collections.ConfigDict(dict(
      loss='power',         # 'power': tanh(β S h) with Σ|c − t|^m; 'xent': softmax cross-entropy
      power=4.5,            # n of the rectified power f(x) = x^n of the features
      m=10.0,
      temperature=3.0,      # β inside the tanh (codes are scaled so winners are ≈ 1)
      code_scale='example', # 'example': each example's codes / its largest; 'dataset': one constant
      current='dot',        # features from W·v (Eq. 1) or 'p': the p-current used in learning
      lr_values=(1e-3, 5e-4, 1e-4, 5e-5, 1e-5),
      lr_boundaries=(100, 150, 200, 250),   # epochs where the next lr value starts
  ))
  c.num_epochs = 300
  c.batch_size = 100
  return c


def associated_config() -> ml_collections.ConfigDict:
  """The fields of Associated Learning (``method='associated'``): MLP_AL on MNIST with the
  thesis' recipe (batch 32, Adam 1e-4, 200 epochs); ``model`` is 'mlp' or 'cnn'."""
  c = base_config()
  c.method = 'associated'
  c.model = 'mlp'
  c.dataset = 'mnist'
  c.associated = ml_collections.ConfigDict(dict(
      width=1024,            # n: every target code, bridge output and MLP_AL forward width
      target_lr_factor=2.0,  # g and h train at this multiple of learning_rate
      backprop=False,        # True: the inference path with ReLU trained end to end (BP baseline)
      metafeature_examples=2000,   # test examples for the final inter/intra distance ratios
      standardize_input=False,     # per-image standardisation before f_1 (the CIFAR recipe)
  ))
  c.learning_rate = 1e-4
  c.batch_size = 32
  c.num_epochs = 200
  return c
