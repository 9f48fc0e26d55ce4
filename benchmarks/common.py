"""What every benchmark shares: the network of a config, random inputs of its shape, FLOP
rates, a time budget, and the Markdown + JSON report. Run benchmarks from the repository root."""

from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp
from absl import flags

from jaxlocal import flops, methods
from jaxlocal.data import dataset_info
from jaxlocal.methods import ssl
from jaxlocal.recipes import CONFIGS, config_file

# the SSL experiments: configs/ssl_<experiment>.py
SSL_EXPERIMENTS = tuple(sorted(p.stem[len('ssl_'):] for p in CONFIGS.glob('ssl_*.py')))


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


def ssl_encoder(experiment: str, spec: str, batch_size: int = 0, steps_per_epoch: int = 100):
  """The encoder phase of an SSL row on random two-view inputs: ``(learner, state, batch)``.

  ``spec`` is a row of ``configs/ssl_<experiment>.py``, or ``<row>@<layer>`` for a greedy
  layer-wise row with that layer active (its schedule trains layer l from step
  l · ssl.num_epochs · steps_per_epoch). ``batch`` holds 2 · batch_size images of the row's
  input shape (0 = the row's ssl.batch_size), A views first.
  """
  row, _, layer = spec.partition('@')
  config = config_file(f'ssl_{experiment}', row)
  if layer and config.ssl.scheme != 'gll':
    raise ValueError(f'{spec!r}: only greedy layer-wise rows (gll_*) take an @layer')
  learner, _ = ssl.encoder_learner(config, steps_per_epoch)
  height, width, channels = dataset_info(config.dataset).image_shape
  if config.image_size:
    height = width = config.image_size
  views = 2 * (batch_size or config.ssl.batch_size)
  key = jax.random.key(0)
  batch = {'image': jax.random.normal(key, (views, height, width, channels)),
           'label': jnp.zeros((views,), jnp.int32)}
  state = jax.jit(learner.init)(key, batch['image'][:2])
  if layer:
    state = state.replace(step=jnp.asarray(
        int(layer) * config.ssl.num_epochs * steps_per_epoch, state.step.dtype))
  return learner, state, batch


def random_batch(info, batch_size: int, seed: int = 0) -> dict:
  k1, k2 = jax.random.split(jax.random.key(seed))
  return {'image': jax.random.normal(k1, (batch_size, *info.image_shape)),
          'label': jax.random.randint(k2, (batch_size,), 0, info.num_classes),
          'index': jnp.arange(batch_size)}


def step_bytes(learner, info, batch_size: int) -> dict:
  """Compiled sizes (bytes) of ``learner``'s donated train step at ``batch_size``, from
  abstract shapes only (nothing is run): ``total`` (temporary + arguments + outputs not aliased
  to donated arguments), ``temp`` and ``argument``."""
  batch = jax.eval_shape(lambda: random_batch(info, batch_size))
  key = jax.random.key(0)
  state = jax.eval_shape(learner.init, key, jax.ShapeDtypeStruct(
      (2, *info.image_shape), batch['image'].dtype))
  memory = jax.jit(learner.train_step, donate_argnums=0).lower(
      state, batch, key).compile().memory_analysis()
  total = (memory.temp_size_in_bytes + memory.argument_size_in_bytes
           + memory.output_size_in_bytes - memory.alias_size_in_bytes)
  return {'total': total, 'temp': memory.temp_size_in_bytes,
          'argument': memory.argument_size_in_bytes}


def flop_rate(step, args: tuple, seconds: float, batch_size: int, compute_dtype: str,
              peak_tflops: float = 0.0) -> dict:
  """FLOP columns of one call ``step(*args)`` that took ``seconds``: its FLOPs counted from its
  jaxpr (:mod:`jaxlocal.flops`: every matmul and convolution of the forward and backward passes
  and the heads; not XLA's ``cost_analysis``, which misses the convolutions XLA:GPU hands to
  cuDNN), per image and per second, and the fraction of the device's dense peak for
  ``compute_dtype`` (:data:`jaxlocal.flops.PEAK_TFLOPS` by device kind, or ``peak_tflops``
  if > 0; left out where neither is known, e.g. on a CPU)."""
  flop = flops.step_flops(step, *args)
  row = {'GFLOP_per_image': flop / batch_size / 1e9, 'TFLOP_per_s': flop / seconds / 1e12}
  peak = flops.peak_tflops(compute_dtype, override=peak_tflops)
  if peak:
    row['fraction_of_peak'] = row['TFLOP_per_s'] / peak
  return row


def define_max_seconds_flag(default: float = 240.0) -> None:
  """``--max_seconds``, the bound of a benchmark that times rows (:class:`TimeBudget`)."""
  flags.DEFINE_float('max_seconds', default, 'Start no row after this many seconds (0 = no bound).')


class TimeBudget:
  """Bounds a benchmark's run time: a row starts only while ``max_seconds`` (counted from
  construction) have not passed, so a run lasts at most max_seconds plus its longest row (its
  compilation, a warm-up and the timed steps); 0 = no bound. ``skipped`` lists the rows that
  did not start."""

  def __init__(self, max_seconds: float):
    self.max_seconds, self.started, self.skipped = max_seconds, time.perf_counter(), []

  def allows(self, row: str) -> bool:
    elapsed = time.perf_counter() - self.started
    if self.max_seconds and elapsed > self.max_seconds:
      print(f'skipped {row}: {elapsed:.0f} s > --max_seconds={self.max_seconds:g}', flush=True)
      self.skipped.append(row)
      return False
    return True


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
