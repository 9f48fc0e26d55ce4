"""The config fields of each method, with their defaults, and the fields that moved.

:func:`run_config` holds the fields every run has (data, devices, reporting); each method's
builder adds only what that method reads (:func:`base_config` for local error signals,
:func:`hebbian_config`, :func:`associated_config`, :func:`ssl_config`, :func:`sae_config`).
Config files in ``configs/`` start from one of them and state their rows' values in the file;
any field is overridable on the command line as ``--config.<field>=<value>``. A field that moved
into a method's section (:data:`MOVED_FIELDS`) is refused with a one-line error naming its new
place, and :func:`migrated` brings an older workdir's ``config.json`` to today's layout.
"""

from __future__ import annotations

import ml_collections


class ConfigError(ValueError):
  """A config value that the method, the data or the workdir cannot accept; the message names
  the field and how to fix it (the command line prints it as one line, exit status 2)."""


def run_config() -> ml_collections.ConfigDict:
  """The fields every run has, whatever its method: the data, the placement on devices and the
  reporting. Each method's builder below adds the fields that method reads."""
  c = ml_collections.ConfigDict()
  # --- public contract ---
  c.dataset = 'cifar10'        # registry name, '<name>-<variant>', or any <name>.npz in data_dir
  c.data_dir = ''              # folder of <name>.npz files; '' = $JAXLOCAL_DATA_DIR, then TFDS
  c.seed = 1
  c.train_examples = 0         # 0 = all; N = the first N training examples (quick runs)
  c.num_classes = 0            # 0 = the registry's, or the labels' (every class must occur)
  # --- data ---
  c.image_size = 0             # 0 = native; N = resize every image to N×N at load time
  c.eval_batch_size = 1000
  c.augment = ml_collections.ConfigDict()
  c.augment.crop_padding = 0   # pixel jitter: zero-pad by this many pixels, random crop back
  c.augment.flip = False       # random horizontal flip
  c.augment.cutout = 0         # side of one square cutout hole (0 = off)
  c.augment.views = 1          # 2: two independently augmented views per example (batch 2B)
  c.augment.resized_crop_scale = (1.0, 1.0)   # RandomResizedCrop area range ((1, 1) = off)
  c.augment.resized_crop_ratio = (3 / 4, 4 / 3)   # ... its aspect ratio (w / h) range
  c.augment.rotation = 0.0     # affine: angle ~ U[-rotation, rotation] degrees
  c.augment.translate = 0.0    # affine: shift ~ U[-translate, translate] * (W, H)
  c.augment.scale = (1.0, 1.0)   # affine: zoom ~ U[scale]
  c.augment.shear = 0.0        # affine: x-shear ~ U[-shear, shear] degrees
  c.augment.affine_prob = 1.0  # probability of applying the affine
  c.augment.brightness = 0.0   # colour jitter magnitudes (torchvision ColorJitter; 0 = off)
  c.augment.contrast = 0.0
  c.augment.saturation = 0.0
  c.augment.hue = 0.0          # <= 0.5
  c.augment.jitter_prob = 1.0  # probability of applying the colour jitter
  c.augment.grayscale_prob = 0.0   # probability of converting a view to grayscale
  # --- method ---
  c.method = 'local_error'
  c.model = 'vgg8b'            # the method's network (see each builder below)
  # --- devices (README "Scaling out") ---
  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = 1              # devices along the data axis (batch split); -1 = all the rest
  c.mesh.stage = 1             # pipeline stages: consecutive blocks on their own devices
  c.mesh.stage_bounds = ()     # first block of each stage after the first; () = balance by cost
  c.mesh.distributed = False   # call jax.distributed.initialize() (multi-host)
  c.mesh.coordinator = ''      # 'host:port' of process 0; '' = detect (Slurm, MPI, TPU)
  c.mesh.num_processes = 0
  c.mesh.process_id = 0
  c.compute_dtype = 'float32'  # or 'bfloat16': bf16 compute, f32 parameters, optimiser and loss
  c.deterministic = False      # True: bitwise-reproducible GPU runs (jaxlocal/determinism.py)
  # --- many runs in one program (README "Many runs in one program"; jaxlocal/sweeps.py) ---
  c.runs = ml_collections.ConfigDict()
  c.runs.seeds = ''            # '0,1,2,3': one run per seed, trained together; '' = config.seed
  c.runs.sweep = ''            # 'beta=0.9,0.99;learning_rate=5e-4,1e-3': float fields per run
  c.runs.mode = 'product'      # sweep fields combined as a 'product' or a 'zip' (equal lengths)
  c.runs.vectorize = 'auto'    # 'vmap', 'unroll' (a loop over runs in the one step), 'auto'
  # --- bookkeeping ---
  c.checkpoints_to_keep = 2
  c.progress_bar = True
  return c


def _one_phase_config(num_epochs: int, batch_size: int) -> ml_collections.ConfigDict:
  """:func:`run_config` plus the fields of a run trained as one phase
  (:func:`jaxlocal.phases.single_phase`): its epochs, batch and batch order."""
  c = run_config()
  c.num_epochs = num_epochs
  c.batch_size = batch_size
  c.classes_per_batch = 0      # > 0: batches drawn from about this many classes (CIFAR-100 sim)
  c.classes_per_batch_until_epoch = 0   # ... during the first epochs only (0 = all epochs)
  return c


def base_config() -> ml_collections.ConfigDict:
  """The fields of Nøkland & Eidnes' local error signals (``method='local_error'``) with the
  reference's defaults: the network, its local losses and the optimiser."""
  c = _one_phase_config(num_epochs=400, batch_size=128)
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
  return c


def hebbian_config() -> ml_collections.ConfigDict:
  """The fields of Krotov & Hopfield's method (``method='hebbian'``) with the paper's MNIST
  defaults: section ``hebbian`` (the rule's layers) and section ``head`` (the supervised top
  layer, with its own ``num_epochs`` and ``batch_size``)."""
  c = run_config()
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
      num_epochs=300,
      batch_size=100,
  ))
  return c


def associated_config() -> ml_collections.ConfigDict:
  """The fields of Associated Learning (``method='associated'``): MLP_AL on MNIST with the
  thesis' recipe (batch 32, Adam 1e-4, 200 epochs); ``model`` is 'mlp' or 'cnn'."""
  c = _one_phase_config(num_epochs=200, batch_size=32)
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
  c.learning_rate = 1e-4       # Adam, with the thesis' step decay over num_epochs
  c.weight_decay = 0.0         # L2
  return c


def ssl_config() -> ml_collections.ConfigDict:
  """The fields of self-supervised local learning (``method='ssl'``, Tang, Yang & Amit 2022):
  an encoder trained on two views by a contrastive loss (section ``ssl``), then a linear probe
  on its frozen features (section ``probe``, with its own ``num_epochs``, ``batch_size`` and
  ``learning_rate``, Adam). Defaults: the MNIST-family experiment, GLL-BP."""
  c = run_config()
  c.method = 'ssl'
  c.model = 'mnist3'          # encoder: 'conv6' (CIFAR), 'vgg6' (STL-10), 'mnist3'
  c.dataset = 'fashion_mnist'
  c.ssl = ml_collections.ConfigDict(dict(
      loss='hinge',           # 'hinge' (contrastive hinge, L1) or 'simclr' (NT-Xent)
      scheme='gll',           # 'e2e', 'gll' (greedy layer-wise), 'rll' (randomized), 'random'
      update_rule='bp',       # 'bp', 'rf' (fixed random feedback), 'urf' (updated), 'dtp'
      embedding=64,           # width of the bias-free linear embedding heads
      m1=1.0, m2=1.5,         # hinge margins for positives / negatives (CIFAR, STL: m2 = 3)
      negatives=0,            # 0: every other image; T: the next T images in batch order
      negative_weight=1.0,    # weight of each negative term (1/5 with the paper's "5 negatives")
      grad_block=False,       # no error through the anchor views
      temperature=0.1,        # SimCLR τ
      num_epochs=400,         # encoder epochs; per layer for 'gll' and 'rll'
      batch_size=1000,
      learning_rate=1e-4,     # Adam, every layer and head
      dtp=ml_collections.ConfigDict(dict(
          target_step=0.5,    # η_t: top target ĥ_L = h_L − η_t ∂L/∂h_L
          noise_std=1.0,      # σ of the inverses' noisy reconstructions
          inverse_lr=1e-3,    # Adam for the inverses (the forward layers use ssl.learning_rate)
          downsample='pool',  # 'pool' (conv + max-pool) or 'stride' (stride-2 conv)
      )),
  ))
  c.probe = ml_collections.ConfigDict(dict(
      blocks=(-1,),           # encoder layers to probe (0-based; -1 = the last)
      dataset='',             # '' = the encoder's dataset; else transfer (same image shape)
      train_examples=0,       # probe training examples (0 = all)
      deform=ml_collections.ConfigDict(dict(  # robustness: a deformed copy of the test set
          rotation=0.0, translate=0.0, scale=(1.0, 1.0), shear=0.0,
          brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0)),
      deform_seed=0,
      num_epochs=200,
      batch_size=1000,
      learning_rate=1e-3,     # Adam
  ))
  c.augment.rotation = 20.0
  c.augment.translate = 0.15
  c.augment.scale = (0.8, 1.2)
  c.augment.shear = 15.0
  c.augment.views = 2
  return c


def sae_config() -> ml_collections.ConfigDict:
  """The fields of semi-supervised SAE training (``method='sae'``, Theiler, Oktay & Frey): the
  paper's base configuration on CIFAR-10 (type C, 4000 labels, wave, dropout 0.1, Adam, batch
  64, 25 epochs per block: 9 × 25 in all)."""
  c = _one_phase_config(num_epochs=225, batch_size=64)
  c.method = 'sae'
  c.model = 'sae_vgg'
  c.sae = ml_collections.ConfigDict(dict(
      type='C',               # SAE encoder/decoder type: 'A', 'B' or 'C'
      schedule='wave',        # 'wave' (one epoch per block in turn) or 'sequential'
      num_labels=4000,        # labelled training examples, drawn once from the seed; 0 = all
      width=1.0,              # channel multiplier of the VGG (0.25: a quarter-width network)
      reconstruction_weight=1.0,
      prediction_weight=1.0,
      stage_learning_rates=(8e-4, 7e-4, 6e-4, 5.1e-4, 4.2e-4, 3.3e-4, 2.4e-4, 1.6e-4),
      classifier_learning_rate=1e-4,   # the FC layers on the frozen features
  ))
  c.dropout = 0.1
  c.augment.update(crop_padding=4, flip=True, rotation=10.0, brightness=0.2, contrast=0.2,
                   saturation=0.2)
  return c


METHOD_CONFIGS = {'local_error': base_config, 'hebbian': hebbian_config,
                  'associated': associated_config, 'ssl': ssl_config, 'sae': sae_config}

# method -> {old top-level field: (its place now, whether an old value carries over to it)}.
# Under hebbian and ssl the top-level num_epochs / batch_size / learning_rate used to mean the
# head's or the probe's; they now live in that section.
MOVED_FIELDS = {
    'hebbian': {'num_epochs': ('head.num_epochs', True),
                'batch_size': ('head.batch_size', True),
                'learning_rate': ('head.lr_values', False)},   # the head's lr schedule
    'ssl': {'num_epochs': ('probe.num_epochs', True),
            'batch_size': ('probe.batch_size', True),
            'learning_rate': ('probe.learning_rate', True)},
}


def moved_field_message(method: str, name: str) -> str | None:
  """One line saying where field ``name`` of a ``method`` config went, or None if it did not
  move."""
  if name not in MOVED_FIELDS.get(method, {}):
    return None
  new, same_value = MOVED_FIELDS[method][name]
  section = new.partition('.')[0]
  if not same_value:
    return (f"method={method!r} has no top-level '{name}': the {section}'s learning rates are "
            f"'{new}' (--config.{new}), one per span of '{section}.lr_boundaries'")
  return (f"config field '{name}' moved: with method={method!r} it is '{new}' "
          f"(--config.{new}); the top-level '{name}' no longer means the {section}'s")


def check_moved_fields(config) -> None:
  """Raises ConfigError when ``config`` sets a field that moved into a section of its
  method (e.g. ``num_epochs`` on a hebbian config, now ``head.num_epochs``)."""
  method = config.get('method', 'local_error')
  for name in MOVED_FIELDS.get(method, {}):
    if name in config:
      raise ConfigError(moved_field_message(method, name))


def flatten(record: dict, prefix: str = '', sep: str = '.') -> dict:
  """A nested record as ``{'a<sep>b': value}`` (``'a.b'`` for a config)."""
  flat = {}
  for key, value in record.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f'{prefix}{key}{sep}', sep))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


def _nested(flat: dict) -> dict:
  record = {}
  for key, value in flat.items():
    *sections, name = key.split('.')
    node = record
    for section in sections:
      node = node.setdefault(section, {})
    node[name] = value
  return record


def migrated(record: dict) -> dict:
  """An older ``config.json`` record in today's layout: moved fields (:data:`MOVED_FIELDS`) in
  their section, fields that its method never read (e.g. ``loss`` on a hebbian run) dropped.
  A field the method has today but the record lacks stays absent (its default is what the old
  run did). Records already in today's layout come back unchanged."""
  method = record.get('method', 'local_error')
  if method not in METHOD_CONFIGS:
    return record
  known = set(flatten(METHOD_CONFIGS[method]().to_dict()))
  old = flatten(record)
  new = {}
  for key, value in old.items():
    moved = MOVED_FIELDS.get(method, {}).get(key)
    if moved and key not in known:
      if moved[1] and moved[0] not in old:
        new[moved[0]] = value
    elif key in known:
      new[key] = value
  return _nested(new)
