"""What every benchmark shares: the network of a config, random inputs of its shape, timing,
and the Markdown + JSON report. Run benchmarks from the repository root."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp

from jaxlocal import methods
from jaxlocal.data import dataset_info


def device_name() -> str:
  return f'{jax.device_count()}x {jax.devices()[0].device_kind} ({jax.default_backend()})'


def learner_of(config, steps_per_epoch: int = 100):
  """The config's learner on its dataset's shapes (no data is loaded), and that info."""
  info = dataset_info(config.dataset)
  method = methods.get_method(config.method)
  if config.method == 'hebbian':  # the rule's learner: one Hebbian layer on raw pixels
    h = config.hebbian
    return method.hebbian_learner(h, h.hidden[0], steps_per_epoch, unit_norm=False), info
  return method.build(config, info, steps_per_epoch), info


def random_batch(info, batch_size: int, seed: int = 0) -> dict:
  k1, k2 = jax.random.split(jax.random.key(seed))
  return {'image': jax.random.normal(k1, (batch_size, *info.image_shape)),
          'label': jax.random.randint(k2, (batch_size,), 0, info.num_classes),
          'index': jnp.arange(batch_size)}


def _cell(value) -> str:
  if isinstance(value, float):
    return f'{value:.0f}' if abs(value) >= 100 else f'{value:.3g}'
  return str(value)


def report(title: str, columns: list[str], rows: list[dict], path: str, **extra) -> None:
  """Prints ``rows`` as a Markdown table under ``title`` and writes them, with ``extra``, as
  JSON to ``path``."""
  print(f'\n{title}\n')
  print('| ' + ' | '.join(columns) + ' |')
  print('|' + '---|' * len(columns))
  for row in rows:
    cells = [row.get(c, '') for c in columns]
    print('| ' + ' | '.join(_cell(c) for c in cells) + ' |')
  with open(path, 'w') as f:
    json.dump({'title': title, 'device': device_name(), 'rows': rows, **extra}, f, indent=2)
  print(f'\nwritten to {path}')
