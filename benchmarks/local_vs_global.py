"""The same network trained locally vs by global backprop, in the same process: step time and
peak temporary memory (XLA's compiled memory analysis), as ratios against ``glob``.

Each row is one loss of ``jaxlocal.methods.local_error`` on the config's network (``glob`` is
global backprop of the output loss through every block). Memory is
``compiled.memory_analysis().temp_size_in_bytes`` of the jitted train step: the activations and
workspace the step holds at its peak, beside the parameters, optimiser state and batch. Local
learning can free a block's activations as soon as its own update is computed; global
backprop keeps every block's until the backward pass reaches it. TFLOP/s is the step's FLOPs
counted from its jaxpr (``common.flop_rate``: every conv and matmul, forward, backward and
heads; VGG8B on CIFAR: 5.69 GFLOP per image for glob, 13.99 for predsim) over its median time,
with the fraction of the device's dense peak for the compute dtype (H100/H200, A100 known by
``device_kind``; ``--peak_tflops`` overrides).

Run time: each row compiles its step (on a GPU, XLA autotunes every convolution then: the bulk
of a row's time), runs one warm-up and ``--repeats`` timed steps. A row starts only within
``--max_seconds`` of the start (default 240); the rows left are listed as skipped, so a run
lasts at most that plus one row. The last command below took 2 min 44 s on 2 shared CPU cores
(2026-12-04; glob 0.0119 TFLOP/s = 5.69 GFLOP · 8 / 3.83 s, predsim 0.0134).

  python benchmarks/local_vs_global.py                       # VGG8B and VGG11B, batch 128
  python benchmarks/local_vs_global.py --batch_size=32 --model=vgg8b
  python benchmarks/local_vs_global.py --compute_dtype=bfloat16 --model=vgg8b \
    --losses=glob,pred,predsim
  python benchmarks/local_vs_global.py --batch_size=8 --model=vgg8b --losses=glob,predsim \
    --repeats=2
  python benchmarks/local_vs_global.py --memory_only --compute_dtype=bfloat16  # compile only

``--memory_only`` compiles each step from abstract shapes (``common.step_bytes``) and reports its
temporary and argument memory without running it: the whole VGG8B and VGG11B table in minutes
on a CPU.
"""

import jax
from absl import app, flags
from ml_collections import config_flags

from common import (TimeBudget, define_max_seconds_flag, flop_rate, learner_of, random_batch,
                    report, step_bytes)
from jaxlocal.parallel.cost import step_seconds

config_flags.DEFINE_config_file('config', 'configs/cifar10.py', 'Config of the dataset.')
flags.DEFINE_multi_string('model', ['vgg8b', 'vgg11b'], 'Networks (config.model values); '
                          'repeat the flag for several.')
flags.DEFINE_list('losses', ['glob', 'pred', 'predsim', 'pred+bpf', 'predsim+bpf'],
                  'Losses; "+bpf" = the backprop-free variant. The first is the baseline.')
flags.DEFINE_integer('batch_size', 128, 'Batch size.')
flags.DEFINE_string('compute_dtype', 'float32', 'float32 or bfloat16.')
flags.DEFINE_integer('repeats', 5, 'Timed steps per row (the median is reported).')
flags.DEFINE_float('peak_tflops', 0.0, 'The device\'s dense matmul peak in TFLOP/s for the '
                   'compute dtype; 0 = jaxlocal.flops.PEAK_TFLOPS by device kind (not '
                   'reported for a device it does not know).')
flags.DEFINE_bool('memory_only', False, 'Compile only: temporary and argument memory, no step '
                  'time (nothing is run).')
define_max_seconds_flag()
flags.DEFINE_string('json', 'local_vs_global.json', 'Where to write the results.')
FLAGS = flags.FLAGS


def measure(config, batch_size: int, repeats: int) -> dict:
  learner, info = learner_of(config)
  batch = random_batch(info, batch_size)
  key = jax.random.key(0)
  state = jax.jit(learner.init)(key, batch['image'][:2])
  compiled = jax.jit(learner.train_step, donate_argnums=0).lower(state, batch, key).compile()
  memory = compiled.memory_analysis()
  seconds, _ = step_seconds(compiled, state, batch, key, repeats=repeats)
  return {'median_step_s': seconds, 'images_per_s': batch_size / seconds,
          'temp_MiB': memory.temp_size_in_bytes / 2**20,
          'argument_MiB': memory.argument_size_in_bytes / 2**20,
          **flop_rate(learner.train_step, (state, batch, key), seconds, batch_size,
                      config.compute_dtype, FLAGS.peak_tflops)}


def measure_memory(config, batch_size: int) -> dict:
  learner, info = learner_of(config)
  sizes = step_bytes(learner, info, batch_size)
  return {'temp_MiB': sizes['temp'] / 2**20, 'argument_MiB': sizes['argument'] / 2**20}


def main(argv):
  del argv
  rows, budget = [], TimeBudget(FLAGS.max_seconds)
  for model in FLAGS.model:
    base = None
    for name in FLAGS.losses:
      if not budget.allows(f'{model} {name}'):
        continue
      config = FLAGS.config
      loss, _, bpf = name.partition('+')
      config.model, config.loss, config.bpf = model, loss, bpf == 'bpf'
      config.compute_dtype = FLAGS.compute_dtype
      if FLAGS.memory_only:
        row = {'model': model, 'loss': name, **measure_memory(config, FLAGS.batch_size)}
      else:
        row = {'model': model, 'loss': name,
               **measure(config, FLAGS.batch_size, FLAGS.repeats)}
      base = base or row
      if not FLAGS.memory_only:
        row['time_vs_first'] = row['median_step_s'] / base['median_step_s']
      row['temp_memory_vs_first'] = row['temp_MiB'] / base['temp_MiB']
      rows.append(row)
      print(row, flush=True)
  if FLAGS.memory_only:
    title = (f'local vs global, batch {FLAGS.batch_size}, {FLAGS.compute_dtype}, compiled '
             f'memory only (ratios against {FLAGS.losses[0]} on the same network), '
             f'{jax.default_backend()}')
    columns = ['model', 'loss', 'temp_MiB', 'temp_memory_vs_first', 'argument_MiB']
  else:
    title = (f'local vs global, batch {FLAGS.batch_size}, {FLAGS.compute_dtype}, median of '
             f'{FLAGS.repeats} steps (ratios against {FLAGS.losses[0]} on the same network)')
    columns = (['model', 'loss', 'median_step_s', 'images_per_s', 'time_vs_first', 'temp_MiB',
                'temp_memory_vs_first', 'GFLOP_per_image', 'TFLOP_per_s']
               + (['fraction_of_peak'] if any('fraction_of_peak' in r for r in rows) else []))
  report(title, columns, rows, FLAGS.json, memory_only=FLAGS.memory_only, batch_size=FLAGS.batch_size, compute_dtype=FLAGS.compute_dtype,
         skipped=budget.skipped)


if __name__ == '__main__':
  app.run(main)
