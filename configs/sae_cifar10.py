"""Semi-supervised local training of VGG layer-stages with supervised autoencoders (Theiler,
Oktay & Frey), CIFAR-10.

  python -m jaxlocal.main --config=configs/sae_cifar10.py --config.data_dir=../shared/data

Rows (jaxlocal/recipes.py), paper test error (%) with the mean prediction: ``base`` (type C,
4000 labels, wave, dropout 0.1; Table IV: VGG 21.9 / last SAE 22.4 / mean 20.9), ``type_a`` 20.0,
``type_b`` 20.6 (Table VI), ``labels_5000`` 18.9, ``labels_10000`` 15.1, ``labels_20000`` 13.6
(Table V), ``full`` (every label, batch 126; Table II: 9.10), ``sequential`` (the base with
sequential training, Fig. 6). Adam, batch 64, 9 blocks × 25 epochs, stage learning rates 8e-4 …
1.6e-4, 1e-4 for the FC layers; crops, flips, ±10° rotations and colour jitter.
"""

from jaxlocal.recipes import sae_experiment_config


def get_config(row='base'):
  return sae_experiment_config('cifar10', row)
