"""The training recipes of Nøkland & Eidnes (2019), per dataset and table row.

Values are those of the reference's ``run_experiments.sh`` and README (see
``shared/research/nokland-local-loss.md`` §4–5). A row fixes the architecture and its
hyperparameters; the loss is the separate field ``loss`` ('pred', 'sim', 'predsim', 'glob',
'glob+sim'), with ``nonlin='auto'`` picking the reference's LeakyReLU for sim losses. Rows the
paper does not list (e.g. VGG11B on MNIST) reuse the dataset's VGG8B hyperparameters.
"""

from __future__ import annotations

import ml_collections

from jaxlocal.config_lib import associated_config, base_config, sae_config, ssl_config

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
# Rows name the AL network; '<row>_bp' is its backprop baseline (the same prediction path, ReLU),
# with the fields under 'bp' changed (the reference's BP VGG: BatchNorm, L2 5e-4; BP ResNets:
# Adam 1e-3).
_AL_CIFAR_INPUT = dict(standardize_input=True, augment=dict(crop_padding=4, flip=True))
_AL_BP_VGG = dict(weight_decay=5e-4)
_AL_BP_RESNET = dict(learning_rate=1e-3)
AL_RECIPES = {
    'mnist': (dict(standardize_input=False, augment=dict()), {
        'mlp': dict(model='mlp', width=1024),
        'cnn': dict(model='cnn', width=256),
    }),
    'cifar10': (_AL_CIFAR_INPUT, {
        'mlp': dict(model='mlp', width=3000),
        'cnn': dict(model='cnn', width=256),
        'vgg': dict(model='vgg', width=300, weight_decay=1e-5, bp=_AL_BP_VGG),
        'resnet20': dict(model='resnet20', width=300, weight_decay=1e-4, num_epochs=300,
                         bp=_AL_BP_RESNET),
        'resnet32': dict(model='resnet32', width=300, weight_decay=1e-4, num_epochs=300,
                         bp=_AL_BP_RESNET),
    }),
    'cifar100': (_AL_CIFAR_INPUT, {
        'mlp': dict(model='mlp', width=3000),
        'cnn': dict(model='cnn', width=500),
        'vgg': dict(model='vgg', width=500, weight_decay=1e-5, bp=_AL_BP_VGG),
        'resnet20': dict(model='resnet20', width=500, weight_decay=5e-4, num_epochs=500,
                         bp=_AL_BP_RESNET),
        'resnet32': dict(model='resnet32', width=500, weight_decay=5e-4, num_epochs=500,
                         bp=_AL_BP_RESNET),
    }),
}


def associated_learning_config(dataset: str, row: str) -> ml_collections.ConfigDict:
  """The config of AL row ``row`` ('mlp', 'cnn', 'vgg', 'resnet20', 'resnet32', or any of them +
  '_bp') on ``dataset``."""
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
  c.num_epochs = recipe.get('num_epochs', c.num_epochs)
  c.associated.update(width=recipe['width'], backprop=bp == 'bp',
                      standardize_input=inputs['standardize_input'])
  if bp:
    c.update(recipe.get('bp', {}))
  c.augment.update(inputs['augment'])
  return c


# Self-supervised local learning (Tang, Yang & Amit 2022, §4; seeds-anchors.md §3.7).
# experiment -> fields. Views: the paper's text (SimCLR-style crops and colour) for CIFAR and
# STL-10, random affine deformations for the MNIST family.
_SIMCLR_VIEWS = dict(resized_crop_scale=(0.2, 1.0), flip=True, brightness=0.4, contrast=0.4,
                     saturation=0.4, hue=0.1, jitter_prob=0.8, grayscale_prob=0.2)
_AFFINE_VIEWS = dict(rotation=20.0, translate=0.15, scale=(0.8, 1.2), shear=15.0)
SSL_EXPERIMENTS = {
    # Table 1: encoder on CIFAR-100, probe on CIFAR-10; Adam 1e-4, 400 epochs (per layer), batch 500
    'cifar': dict(dataset='cifar100', probe_dataset='cifar10', model='conv6', m2=3.0,
                  batch_size=500, learning_rate=1e-4, num_epochs=400, probe_epochs=400,
                  probe_lr=1e-3, views=_SIMCLR_VIEWS,
                  deform=dict(rotation=15.0, translate=0.1, brightness=0.3, contrast=0.3)),
    # Table 2: VGG6 on 64×64 STL-10 (resized here), 100 epochs; probe 200 epochs, lr 5e-3
    'stl10': dict(dataset='stl10', probe_dataset='', model='vgg6', m2=3.0, image_size=64,
                  batch_size=500, learning_rate=1e-4, num_epochs=100, probe_epochs=200,
                  probe_lr=5e-3, views=_SIMCLR_VIEWS, negatives=4),
    # §4.3 with the offline stand-in for EMNIST → MNIST: m1 = 1, m2 = 1.5, batch 1000
    'hinge_fmnist_to_mnist': dict(dataset='fashion_mnist', probe_dataset='mnist', model='mnist3',
                            m2=1.5, batch_size=1000, learning_rate=1e-3, num_epochs=400,
                            probe_epochs=200, probe_lr=1e-3, views=_AFFINE_VIEWS,
                            deform=dict(rotation=30.0, translate=0.15, scale=(0.8, 1.1),
                                        shear=20.0)),
    'hinge_mnist_to_fmnist': dict(dataset='mnist', probe_dataset='fashion_mnist', model='mnist3',
                            m2=1.5, batch_size=1000, learning_rate=1e-3, num_epochs=400,
                            probe_epochs=200, probe_lr=1e-3, views=_AFFINE_VIEWS,
                            deform=dict(rotation=30.0, translate=0.15, scale=(0.8, 1.1),
                                        shear=20.0)),
}
SSL_SCHEMES_UPDATES = ('e2e_bp', 'e2e_rf', 'e2e_dtp', 'gll_bp', 'gll_urf', 'gll_rf', 'rll_bp',
                       'rll_urf', 'rll_rf')
SSL_ROWS = (SSL_SCHEMES_UPDATES + tuple(f'{r}_neg5' for r in SSL_SCHEMES_UPDATES)
            + ('e2e_dtp_stride', 'simclr_e2e_bp', 'random'))


def ssl_experiment_config(experiment: str, row: str) -> ml_collections.ConfigDict:
  """The config of ``row`` of an SSL experiment: '<scheme>_<update>' (hinge, all in-batch
  negatives), the same + '_neg5' (gradient block and the paper's "5 negatives": the next 4
  images, each weighted 1/5), 'e2e_dtp_stride' (DTP with stride-2 convs instead of max-pooling),
  'simclr_e2e_bp', or 'random' (the untrained encoder)."""
  if row not in SSL_ROWS:
    raise ValueError(f'unknown row {row!r}; choose one of {", ".join(SSL_ROWS)} '
                     f'(as --config=configs/ssl_{experiment}.py:<row>)')
  e = SSL_EXPERIMENTS[experiment]
  c = ssl_config()
  c.dataset, c.model, c.image_size = e['dataset'], e['model'], e.get('image_size', 0)
  c.num_epochs, c.batch_size, c.learning_rate = e['probe_epochs'], e['batch_size'], e['probe_lr']
  c.augment.update(rotation=0.0, translate=0.0, scale=(1.0, 1.0), shear=0.0)
  c.augment.update(e['views'])
  c.probe.dataset = e['probe_dataset']
  c.probe.deform.update(e.get('deform', {}))
  c.ssl.update(m2=e['m2'], batch_size=e['batch_size'], learning_rate=e['learning_rate'],
               num_epochs=e['num_epochs'], negatives=e.get('negatives', 0),
               negative_weight=0.2 if e.get('negatives') else 1.0,
               grad_block=bool(e.get('negatives')))
  parts = row.split('_')
  if parts[0] == 'random':
    c.ssl.scheme = 'random'
    return c
  if parts[0] == 'simclr':
    c.ssl.loss = 'simclr'
    parts = parts[1:]
  c.ssl.scheme, c.ssl.update_rule = parts[0], parts[1]
  if c.ssl.update_rule == 'dtp' and c.model == 'mnist3':
    c.image_size = 32  # every DTP layer halves the side: 32 → 16 → 8 → 4
  if parts[-1] == 'stride':
    c.ssl.dtp.downsample = 'stride'
  if parts[-1] == 'neg5':
    c.ssl.update(negatives=4, negative_weight=0.2, grad_block=True)
  return c


# Semi-supervised SAE training (Theiler, Oktay & Frey, Tables II–VI): dataset -> (base fields,
# {row: overrides}). CIFAR-10's base is the paper's base configuration; the MNIST family runs
# here with 100 or 1000 labels, 2-pixel crops and ±10° rotations.
_SAE_MNIST_AUGMENT = dict(crop_padding=2, flip=False, rotation=10.0, brightness=0.0,
                          contrast=0.0, saturation=0.0)
_SAE_MNIST_ROWS = {
    'labels_100': dict(num_labels=100), 'labels_1000': dict(num_labels=1000),
    'labels_1000_sequential': dict(num_labels=1000, schedule='sequential'),
    'full': dict(num_labels=0),
}
SAE_RECIPES = {
    'cifar10': (dict(), {
        'base': dict(),
        'type_a': dict(type='A'), 'type_b': dict(type='B'),
        'labels_5000': dict(num_labels=5000), 'labels_10000': dict(num_labels=10000),
        'labels_20000': dict(num_labels=20000),
        'sequential': dict(schedule='sequential'),
        'full': dict(num_labels=0, batch_size=126),
    }),
    'cifar100': (dict(), {'base': dict(num_labels=10000),
                          'full': dict(num_labels=0, batch_size=126)}),
    'mnist': (dict(augment=_SAE_MNIST_AUGMENT), _SAE_MNIST_ROWS),
    'fashion_mnist': (dict(augment=dict(_SAE_MNIST_AUGMENT, flip=True)), _SAE_MNIST_ROWS),
}


def sae_experiment_config(dataset: str, row: str) -> ml_collections.ConfigDict:
  """The config of SAE row ``row`` on ``dataset`` (see :data:`SAE_RECIPES`)."""
  base, rows = SAE_RECIPES[dataset]
  if row not in rows:
    raise ValueError(f'unknown row {row!r} for {dataset}; choose one of {sorted(rows)} '
                     f'(as --config=configs/sae_{dataset}.py:<row>)')
  c = sae_config()
  c.dataset = dataset
  c.augment.update(base.get('augment', {}))
  overrides = dict(rows[row])
  c.batch_size = overrides.pop('batch_size', c.batch_size)
  c.sae.update(overrides)
  return c
