"""Images/s of one jitted training step per loss, on one config's network, in one process.

Times ``learner.train_step`` (forward, local losses, gradients and every block's update) on
random inputs of the dataset's shape, after compilation and a warm-up step; reports medians of
``--repeats`` steps, each loss's speed relative to the first one listed, and TFLOP/s with the
fraction of the device's peak (``common.flop_rate``: FLOPs counted from the step's jaxpr).
Prints a Markdown table and writes JSON.

Run time: per loss, one compilation (on a GPU, with XLA's autotuning: the bulk of it), a
warm-up and ``--repeats`` steps; a loss starts only within ``--max_seconds`` of the start
(default 240), so a run lasts at most that plus one loss.

  python benchmarks/step_throughput.py --config=configs/predsim_vgg8b.py --losses=predsim,glob
  python benchmarks/step_throughput.py --config=configs/mnist.py:mlp --losses=predsim,glob,pred
"""

import json
import statistics
import time

import jax
from absl import app, flags
from ml_collections import config_flags

from common import TimeBudget, define_max_seconds_flag, flop_rate
from jaxlocal.blocks import make_learner
from jaxlocal.data import dataset_info
from jaxlocal.methods.local_error import network_blocks
from jaxlocal.objectives.local_error import LOSSES
from jaxlocal.optim import optimizer_from_config

config_flags.DEFINE_config_file('config', 'configs/predsim_vgg8b.py', 'Config of the network.')
flags.DEFINE_list('losses', ['predsim', 'glob'], 'Losses to time, the first is the baseline.')
flags.DEFINE_integer('repeats', 5, 'Timed steps per loss (the median is reported).')
flags.DEFINE_float('peak_tflops', 0.0, 'Dense peak in TFLOP/s for the compute dtype; 0 = '
                   'jaxlocal.flops.PEAK_TFLOPS by device kind.')
define_max_seconds_flag()
flags.DEFINE_string('json', 'step_throughput.json', 'Where to write the results.')
FLAGS = flags.FLAGS


def time_steps(config, image_shape, num_classes, repeats):
  """Seconds of each of ``repeats`` train steps, after compile and one warm-up step, and the
  step function with the shapes of its arguments (for :func:`common.flop_rate`)."""
  blocks = network_blocks(config, num_classes=num_classes, image_shape=image_shape)
  learner = make_learner(blocks, optimizer_from_config(config, 100),
                         detach=config.loss in LOSSES)
  keys = jax.random.split(jax.random.key(config.seed), 3)
  batch = {'image': jax.random.normal(keys[0], (config.batch_size, *image_shape)),
           'label': jax.random.randint(keys[1], (config.batch_size,), 0, num_classes)}
  state = jax.jit(learner.init)(keys[2], batch['image'][:2])
  shapes = jax.eval_shape(lambda: (state, batch, keys[2]))  # the state is donated below
  step = jax.jit(learner.train_step, donate_argnums=0).lower(state, batch, keys[2]).compile()
  state, _ = step(state, batch, keys[2])
  jax.block_until_ready(state)
  seconds = []
  for i in range(repeats):
    started = time.perf_counter()
    state, metrics = step(state, batch, jax.random.fold_in(keys[2], i))
    jax.block_until_ready((state, metrics))
    seconds.append(time.perf_counter() - started)
  return seconds, learner.train_step, shapes


def main(argv):
  del argv
  config = FLAGS.config
  info = dataset_info(config.dataset)
  image_shape, num_classes = info.image_shape, info.num_classes
  rows, budget = [], TimeBudget(FLAGS.max_seconds)
  for loss in FLAGS.losses:
    if not budget.allows(loss):
      continue
    config.loss = loss
    seconds, step, shapes = time_steps(config, image_shape, num_classes, FLAGS.repeats)
    median = statistics.median(seconds)
    rows.append({'loss': loss, 'model': config.model, 'batch_size': config.batch_size,
                 'median_step_s': median, 'images_per_sec': config.batch_size / median,
                 **flop_rate(step, shapes, median, config.batch_size, config.compute_dtype,
                             FLAGS.peak_tflops),
                 'step_seconds': seconds})
  base = rows[0]['median_step_s']
  device = f'{jax.device_count()}x {jax.devices()[0].device_kind}'
  print(f'\n{config.dataset} {config.model}, batch {config.batch_size}, {device}, '
        f'median of {FLAGS.repeats} steps\n')
  print(f'| loss | median step (s) | images/s | speed vs {rows[0]["loss"]} | GFLOP/image | '
        'TFLOP/s | of peak |')
  print('|---|---|---|---|---|---|---|')
  for r in rows:
    peak = f'{100 * r["fraction_of_peak"]:.1f} %' if 'fraction_of_peak' in r else ''
    print(f'| {r["loss"]} | {r["median_step_s"]:.4f} | {r["images_per_sec"]:.1f} | '
          f'{base / r["median_step_s"]:.2f}x | {r["GFLOP_per_image"]:.3g} | '
          f'{r["TFLOP_per_s"]:.3g} | {peak} |')
  if budget.skipped:
    print(f'\nskipped (--max_seconds={FLAGS.max_seconds:g}): {", ".join(budget.skipped)}')
  with open(FLAGS.json, 'w') as f:
    json.dump({'device': device, 'dataset': config.dataset, 'rows': rows,
               'skipped': budget.skipped}, f, indent=2)


if __name__ == '__main__':
  app.run(main)
