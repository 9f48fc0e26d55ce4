"""Aggregate images/s of R runs trained in one program against R sequential solo runs.

For each R in ``--runs``, the config's learner is stacked R times (``jaxlocal.many_runs``: one
jitted step for all runs, ``jax.vmap`` or an unrolled loop, ``--vectorize``; 'auto' as the
library picks: unroll for a convolutional network on CPU, else vmap), each run on its own
random batch of the dataset's shape. A repeat times ``--steps`` steps after compilation and a
warm-up step; the table reports medians: aggregate images/s, the ratio of the group's time to R
solo runs' (R × the R = 1 time; below 1 the group is cheaper), and XLA's compiled memory
(arguments + temporary) per run. Prints a Markdown table and writes JSON.

  python benchmarks/many_runs.py --config=configs/predsim_vgg8b.py --runs=1,2,4,8
  python benchmarks/many_runs.py --config=configs/mnist.py:mlp --runs=1,2,4
"""

import statistics
import time

import jax
import jax.numpy as jnp
from absl import app, flags
from ml_collections import config_flags

from common import device_name, learner_of, report
from jaxlocal.many_runs import over_runs, resolve_vectorize

config_flags.DEFINE_config_file('config', 'configs/predsim_vgg8b.py', 'Config of the network.')
flags.DEFINE_list('runs', ['1', '2', '4', '8'], 'Numbers of runs in one program (1 first).')
flags.DEFINE_integer('steps', 5, 'Steps per timed repeat.')
flags.DEFINE_integer('repeats', 3, 'Timed repeats per R (the median is reported).')
flags.DEFINE_integer('batch_size', 0, 'Batch per run (0 = the config\'s).')
flags.DEFINE_string('model', '', 'Overrides the config\'s model (e.g. vgg:8,M).')
flags.DEFINE_enum('vectorize', 'auto', ['auto', 'vmap', 'unroll'], 'How the runs share a step.')
flags.DEFINE_string('json', 'many_runs.json', 'Where to write the results.')
FLAGS = flags.FLAGS


def time_group(learner, info, batch_size: int, count: int, mode: str, steps: int,
               repeats: int):
  """(median seconds per step, compiled bytes) of ``count`` runs in one jitted step."""
  keys = jax.random.split(jax.random.key(0), count)
  image_shape = info.image_shape
  images = jax.random.normal(jax.random.key(1), (count, batch_size, *image_shape))
  labels = jax.random.randint(jax.random.key(2), (count, batch_size), 0, info.num_classes)
  batch = {'image': images, 'label': labels,
           'index': jnp.broadcast_to(jnp.arange(batch_size), (count, batch_size))}
  init = jax.jit(over_runs(learner.init, (0, None), count, mode))
  state = init(keys, images[0, :2])
  step = jax.jit(over_runs(learner.train_step, (0, 0, 0), count, mode), donate_argnums=0)
  compiled = step.lower(state, batch, keys).compile()
  memory = compiled.memory_analysis()
  used = (memory.argument_size_in_bytes + memory.temp_size_in_bytes) if memory else float('nan')
  state, _ = compiled(state, batch, keys)
  jax.block_until_ready(state)
  seconds = []
  for _ in range(repeats):
    started = time.perf_counter()
    for _ in range(steps):
      state, metrics = compiled(state, batch, keys)
    jax.block_until_ready((state, metrics))
    seconds.append((time.perf_counter() - started) / steps)
  return statistics.median(seconds), used


def main(argv):
  del argv
  config = FLAGS.config
  if FLAGS.model:
    config.model = FLAGS.model
  if FLAGS.batch_size:
    config.batch_size = FLAGS.batch_size
  counts = [int(r) for r in FLAGS.runs]
  if counts[0] != 1:
    counts = [1] + counts
  learner, info = learner_of(config)
  mode = resolve_vectorize(FLAGS.vectorize, learner.init, jax.random.key(0),
                           jnp.zeros((2, *info.image_shape)))
  rows, solo = [], None
  for count in counts:
    seconds, used = time_group(learner, info, config.batch_size, count, mode, FLAGS.steps,
                               FLAGS.repeats)
    solo = solo or seconds
    rows.append({'runs': count, 'images_per_sec': count * config.batch_size / seconds,
                 'step_ms': 1e3 * seconds, 'vs_solo_runs': seconds / (count * solo),
                 'memory_per_run_mib': used / count / 2 ** 20})
    print(rows[-1], flush=True)
  report(f'Many runs in one program: {config.model} {config.get("loss", "")}, batch '
         f'{config.batch_size} per run, {mode}, {device_name()}',
         ['runs', 'images_per_sec', 'step_ms', 'vs_solo_runs', 'memory_per_run_mib'], rows,
         FLAGS.json, vectorize=mode, steps=FLAGS.steps, repeats=FLAGS.repeats)


if __name__ == '__main__':
  app.run(main)
