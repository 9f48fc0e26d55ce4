"""How a config file's tables become a config, and a config file by name.

Each ``configs/<name>.py`` states its rows' values in the file: ``SHARED`` (the fields every row
of the file has) and ``ROWS`` (``{row: fields}``), plus ``BACKPROP`` (the fields of an Associated
Learning row's ``_bp`` baseline) or ``EXPERIMENT`` (an SSL experiment's fields; its rows are
named by scheme and update rule, :data:`SSL_ROWS`). A table's fields are config fields, a dict
naming a section (``augment=dict(cutout=14)``); a field the method's config lacks is refused
with the table that names it. The builders below start from the method's defaults
(:mod:`jaxlocal.config_lib`), apply ``SHARED``, then the row.
"""

from __future__ import annotations

import importlib.util
import pathlib
from collections.abc import Callable, Mapping

import ml_collections

from jaxlocal.config_lib import ConfigError, associated_config, ssl_config

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / 'configs'

# SSL views (Tang, Yang & Amit 2022, §4): the paper's SimCLR-style crops and colour (no affine)
# for CIFAR and STL-10, random affine deformations for the MNIST family.
SIMCLR_VIEWS = dict(rotation=0.0, translate=0.0, scale=(1.0, 1.0), shear=0.0,
                    resized_crop_scale=(0.2, 1.0), flip=True, brightness=0.4, contrast=0.4,
                    saturation=0.4, hue=0.1, jitter_prob=0.8, grayscale_prob=0.2)
AFFINE_VIEWS = dict(rotation=20.0, translate=0.15, scale=(0.8, 1.2), shear=15.0)
SSL_SCHEMES_UPDATES = ('e2e_bp', 'e2e_rf', 'e2e_dtp', 'gll_bp', 'gll_urf', 'gll_rf', 'rll_bp',
                       'rll_urf', 'rll_rf')
SSL_ROWS = (SSL_SCHEMES_UPDATES + tuple(f'{r}_neg5' for r in SSL_SCHEMES_UPDATES)
            + ('e2e_dtp_stride', 'simclr_e2e_bp', 'random'))


def apply(config: ml_collections.ConfigDict, fields: Mapping, where: str,
          prefix: str = '') -> None:
  """Sets ``fields`` (a dict value names a section) on ``config`` in place; a field the config
  lacks raises ConfigError naming ``where`` (the table) and the field."""
  for name, value in fields.items():
    if name not in config:
      raise ConfigError(f'{where}: unknown config field {prefix + name!r}')
    if isinstance(value, Mapping):
      apply(config[name], value, where, f'{prefix}{name}.')
    else:
      config[name] = value


def rows_config(builder: Callable[[], ml_collections.ConfigDict], shared: Mapping,
                rows: Mapping, row: str, file: str) -> ml_collections.ConfigDict:
  """``builder()``'s defaults, then the file's ``SHARED`` fields, then ``ROWS[row]``."""
  if row not in rows:
    raise ValueError(f'unknown row {row!r} for {file}; choose one of {sorted(rows)} '
                     f'(as --config={file}:<row>)')
  c = builder()
  apply(c, shared, f'{file} SHARED')
  apply(c, rows[row], f'{file} ROWS[{row!r}]')
  return c


def associated_rows_config(shared: Mapping, rows: Mapping, backprop: Mapping, row: str,
                           file: str) -> ml_collections.ConfigDict:
  """Associated Learning row ``row``: a row of ``rows``, or that row + '_bp', its backprop
  baseline (``associated.backprop=True`` and the fields ``backprop`` gives that row)."""
  model, _, bp = row.partition('_')
  if model not in rows or bp not in ('', 'bp'):
    raise ValueError(f'unknown row {row!r} for {file}; choose one of {sorted(rows)}, each '
                     f'optionally with _bp (as --config={file}:<row>)')
  c = rows_config(associated_config, shared, rows, model, file)
  if bp:
    c.associated.backprop = True
    apply(c, backprop.get(model, {}), f'{file} BACKPROP[{model!r}]')
  return c


def ssl_rows_config(experiment: Mapping, row: str, file: str) -> ml_collections.ConfigDict:
  """SSL row ``row`` of an experiment (its fields ``experiment``): '<scheme>_<update>' (hinge,
  all in-batch negatives), the same + '_neg5' (gradient block and the paper's "5 negatives":
  the next 4 images, each weighted 1/5), 'e2e_dtp_stride' (DTP with stride-2 convs instead of
  max-pooling), 'simclr_e2e_bp', or 'random' (the untrained encoder)."""
  if row not in SSL_ROWS:
    raise ValueError(f'unknown row {row!r}; choose one of {", ".join(SSL_ROWS)} '
                     f'(as --config={file}:<row>)')
  c = ssl_config()
  apply(c, experiment, f'{file} EXPERIMENT')
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


def config_file(name: str, row: str | None = None) -> ml_collections.ConfigDict:
  """The config of ``configs/<name>.py`` (its ``get_config(row)``; its default row if None), as
  ``--config=configs/<name>.py[:<row>]`` gives it."""
  path = CONFIGS / f'{name}.py'
  if not path.exists():
    raise ValueError(f'no config file {path}')
  spec = importlib.util.spec_from_file_location(f'_jaxlocal_configs_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config() if row is None else module.get_config(row)
