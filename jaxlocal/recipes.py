"""The training recipes of Nøkland & Eidnes (2019), per dataset and table row.

Values are those of the reference's ``run_experiments.sh`` and README (see
``shared/research/nokland-local-loss.md`` §4–5). A row fixes the architecture and its
hyperparameters; the loss is the separate field ``loss`` ('pred', 'sim', 'predsim', 'glob',
'glob+sim'), with ``nonlin='auto'`` picking the reference's LeakyReLU for sim losses. Rows the
paper does not list (e.g. VGG11B on MNIST) reuse the dataset's VGG8B hyperparameters.
"""

from __future__ import annotations

import ml_collections

from jaxlocal.config_lib import associated_config, base_config

_MNIST_SCHEDULE = dict(num_epochs=100, lr_decay_milestones=(50, 75, 89, 94))
_FASHION_SCHEDULE = dict(num_epochs=200, lr_decay_milestones=(100, 150, 175, 188))
_CIFAR_SCHEDULE = dict(num_epochs=400, lr_decay_milestones=(200, 300, 350, 375))

MLP_1024 = dict(model='mlp', num_layers=3, num_hidden=1024)
MLP_3000 = dict(model='mlp', num_layers=3, num_hidden=3000)

# dataset -> (schedule and augmentation, {row: overrides})
RECIPES = {
    'mnist': (dict(_MNIST_SCHEDULE, augment=dict(crop_padding=2)), {
        'mlp': dict(MLP_1024, dropout=0.1),
        'vgg8b': dict(model='vgg8b', dropout=0.2, dim_in_decoder=1024),
        'vgg8b_co': dict(model='vgg8b', dropout=0.2, dim_in_decoder=1024, cutout=14),
        'vgg11b': dict(model='vgg11b', dropout=0.2, dim_in_decoder=1024),
    }),
    'fashion_mnist': (dict(_FASHION_SCHEDULE, augment=dict(crop_padding=2, flip=True)), {
        'mlp': dict(MLP_1024, dropout=0.025),
        'vgg8b': dict(model='vgg8b', dropout=0.1, dim_in_decoder=1024),
        'vgg8b_2x': dict(model='vgg8b', dropout=0.2, learning_rate=3e-4, feat_mult=2),
        'vgg8b_2x_co': dict(model='vgg8b', dropout=0.2, learning_rate=3e-4, feat_mult=2,
                            cutout=14),
        'vgg11b': dict(model='vgg11b', dropout=0.1, dim_in_decoder=1024),
    }),
    'kmnist': (dict(_MNIST_SCHEDULE, augment=dict()), {
        'mlp': dict(MLP_1024, dropout=0.2),
        'vgg8b': dict(model='vgg8b', dropout=0.3, dim_in_decoder=1024),
        'vgg8b_co': dict(model='vgg8b', dropout=0.15, dim_in_decoder=1024, cutout=14),
        'vgg11b': dict(model='vgg11b', dropout=0.3, dim_in_decoder=1024),
    }),
    'cifar10': (dict(_CIFAR_SCHEDULE, augment=dict(crop_padding=4, flip=True)), {
        'mlp': dict(MLP_3000, dropout=0.1),
        'vgg8b': dict(model='vgg8b', dropout=0.2, dim_in_decoder=2048),
        'vgg11b': dict(model='vgg11b', dropout=0.2, dim_in_decoder=2048),
        'vgg11b_2x': dict(model='vgg11b', dropout=0.25, learning_rate=3e-4, feat_mult=2),
        'vgg11b_3x': dict(model='vgg11b', dropout=0.3, learning_rate=3e-4, feat_mult=3),
        'vgg11b_3x_co': dict(model='vgg11b', dropout=0.3, learning_rate=3e-4, feat_mult=3,
                             cutout=16),
        # Table 5, no backprop: --bio --num-layers 1, beta 0.01 for predsim, default dim-in-decoder
        'vgg8b_bpf': dict(model='vgg8b', dropout=0.05, bpf=True, beta=0.01),
        'vgg8b_2x_bpf': dict(model='vgg8b', dropout=0.1, learning_rate=3e-4, feat_mult=2,
                             bpf=True, beta=0.01),
    }),
    # sim and predsim in the reference add --classes-per-batch 20 until epoch 200; pred and
    # glob runs turn it off with --config.classes_per_batch=0 (configs/README.md).
    'cifar100': (dict(_CIFAR_SCHEDULE, augment=dict(crop_padding=4, flip=True),
                      classes_per_batch=20, classes_per_batch_until_epoch=200), {
        'mlp': dict(MLP_3000, dropout=0.025),
        'vgg8b': dict(model='vgg8b', dropout=0.05),
        'vgg11b': dict(model='vgg11b', dropout=0.05),
        'vgg11b_2x': dict(model='vgg11b', dropout=0.1, learning_rate=3e-4, feat_mult=2),
        'vgg11b_3x': dict(model='vgg11b', dropout=0.15, learning_rate=3e-4, feat_mult=3),
    }),
    'svhn': (dict(_MNIST_SCHEDULE, augment=dict()), {
        'mlp': dict(MLP_3000, dropout=0.1),
        'vgg8b': dict(model='vgg8b', dropout=0.3, learning_rate=3e-4, dim_in_decoder=2048),
        'vgg8b_co': dict(model='vgg8b', dropout=0.15, learning_rate=3e-4, dim_in_decoder=2048,
                         cutout=16),
        'vgg11b': dict(model='vgg11b', dropout=0.3, learning_rate=3e-4, dim_in_decoder=2048),
    }),
    'stl10': (dict(_CIFAR_SCHEDULE, augment=dict()), {
        'mlp': dict(MLP_3000, dropout=0.1),
        'vgg8b': dict(model='vgg8b', dropout=0.1, dim_in_decoder=2048),
        'vgg8b_co': dict(model='vgg8b', dropout=0.1, dim_in_decoder=2048, cutout=48),
        'vgg11b': dict(model='vgg11b', dropout=0.1, dim_in_decoder=2048),
    }),
}


def local_error_config(dataset: str, row: str | None, default_row: str) -> ml_collections.ConfigDict:
  """The config of ``row`` (e.g. 'vgg8b', 'mlp', 'vgg11b_3x_co') of ``dataset``'s table."""
  schedule, rows = RECIPES[dataset]
  row = row or default_row
  if row not in rows:
    raise ValueError(f'unknown row {row!r} for {dataset}; choose one of {sorted(rows)} '
                     f'(as --config=configs/{dataset}.py:<row>)')
  c = base_config()
  c.dataset = dataset
  overrides = dict(rows[row])
  c.augment.cutout = overrides.pop('cutout', 0)
  c.augment.update(schedule['augment'])
  c.num_epochs = schedule['num_epochs']
  c.lr_decay_milestones = schedule['lr_decay_milestones']
  c.classes_per_batch = schedule.get('classes_per_batch', 0)
  c.classes_per_batch_until_epoch = schedule.get('classes_per_batch_until_epoch', 0)
  c.update(overrides)
  return c


# Associated Learning (Kao & Chen, thesis Tables 3.1–3.3): dataset -> (input recipe, {row: ...}).
# Rows name the AL network; '<row>_bp' is its backprop baseline (the same prediction path, ReLU).
_AL_CIFAR_INPUT = dict(standardize_input=True, augment=dict(crop_padding=4, flip=True))
AL_RECIPES = {
    'mnist': (dict(standardize_input=False, augment=dict()), {
        'mlp': dict(model='mlp', width=1024),
        'cnn': dict(model='cnn', width=256),
    }),
    'cifar10': (_AL_CIFAR_INPUT, {
        'mlp': dict(model='mlp', width=3000),
        'cnn': dict(model='cnn', width=256),
        'vgg': dict(model='vgg', width=300, weight_decay=1e-5),
    }),
    'cifar100': (_AL_CIFAR_INPUT, {
        'mlp': dict(model='mlp', width=3000),
        'cnn': dict(model='cnn', width=500),
        'vgg': dict(model='vgg', width=500, weight_decay=1e-5),
    }),
}


def associated_learning_config(dataset: str, row: str) -> ml_collections.ConfigDict:
  """The config of AL row ``row`` ('mlp', 'cnn', 'vgg', or any of them + '_bp') on ``dataset``."""
  inputs, rows = AL_RECIPES[dataset]
  model, _, bp = row.partition('_')
  if model not in rows or bp not in ('', 'bp'):
    raise ValueError(f'unknown row {row!r} for {dataset}; choose one of {sorted(rows)}, each '
                     f'optionally with _bp (as --config=configs/al_{dataset}.py:<row>)')
  recipe = dict(rows[model])
  c = associated_config()
  c.dataset = dataset
  c.model = recipe['model']
  c.weight_decay = recipe.get('weight_decay', 0.0)
  c.associated.update(width=recipe['width'], backprop=bp == 'bp',
                      standardize_input=inputs['standardize_input'])
  c.augment.update(inputs['augment'])
  return c
