"""Examples/s on 1, 2, 4, 8 devices, data parallel and block parallel, with the exactness checks.

Data parallel: the learner's train step jitted over a ``data`` mesh of n devices (batch split,
state replicated), compared after ``--steps`` steps with the same steps on one device (largest
parameter difference). Block parallel: the network cut into n stages balanced by measured cost
(:mod:`jaxlocal.parallel.pipeline`), ``--microbatches`` micro-batches through the pipeline,
compared with the single-device reference of the same delayed schedule. Rows whose n exceeds the
devices present are skipped. Medians of ``--repeats`` timed passes after a warm-up pass.

The checks train with ``--optimizer`` (SGD by default): in nets with BatchNorm a bias before it
has an exactly-zero true gradient, and Adam divides the round-off of a reordered sum by its own
magnitude into a full step (of a bias BatchNorm removes); SGD shows the real size of the
differences. ``--optimizer=''`` keeps the config's.

On simulated CPU devices (``--cpu_devices``, i.e. XLA_FLAGS=--xla_force_host_platform_device_count)
all "devices" share the same cores: the speed-up is not meaningful there, the equality is.

  python benchmarks/scaling.py --config=configs/mnist.py:mlp --cpu_devices=8
  python benchmarks/scaling.py --config=configs/predsim_vgg8b.py --batch_size=128   # GPUs
"""

import functools

from absl import app, flags
from ml_collections import config_flags

config_flags.DEFINE_config_file('config', 'configs/mnist.py:mlp', 'Config of the network.')
flags.DEFINE_list('devices', ['1', '2', '4', '8'], 'Device counts to run.')
flags.DEFINE_integer('cpu_devices', 0, 'Simulate this many CPU devices (0: the real devices).')
flags.DEFINE_integer('batch_size', 0, 'Global batch size (0: the config\'s).')
flags.DEFINE_integer('microbatches', 8, 'Micro-batches per block-parallel pass.')
flags.DEFINE_integer('steps', 3, 'Steps compared for the data-parallel equality check.')
flags.DEFINE_integer('repeats', 3, 'Timed passes (the median is reported).')
flags.DEFINE_string('optimizer', 'sgd', 'Optimizer for the runs ('' = the config\'s).')
flags.DEFINE_string('json', 'scaling.json', 'Where to write the results.')
FLAGS = flags.FLAGS


def max_difference(a, b) -> float:
  """Largest absolute difference between the parameters of two states (or tuples of stage
  states). BatchNorm's running statistics are left out: they are sums of squares of
  activations, whose last-bit differences under another summation order are not small in
  absolute terms."""
  import jax
  import numpy as np
  params = lambda s: [t.params for t in s] if isinstance(s, tuple) else s.params
  return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
             for x, y in zip(jax.tree.leaves(params(a)), jax.tree.leaves(params(b))))


def data_parallel_row(learner, state, batches, n, repeats):
  import jax
  from jaxlocal.parallel.cost import median_seconds
  from jaxlocal.parallel.mesh import MeshSpec, batch_sharded, replicated
  mesh = MeshSpec(data=n).make()
  rep, split = replicated(mesh), batch_sharded(mesh)
  step = jax.jit(learner.train_step, in_shardings=(rep, split, rep), out_shardings=rep)
  key = jax.random.key(0)

  def run(state):
    for m in range(len(batches['label'])):
      state, _ = step(state, jax.tree.map(lambda a: a[m], batches), key)
    return state

  placed = jax.device_put(state, rep, may_alias=False)
  final = jax.device_get(run(placed))
  seconds, _ = median_seconds(run, placed, repeats=repeats)
  return seconds, final


def block_parallel_row(learner, state, batches, n, repeats, bounds):
  import jax
  from jaxlocal.parallel.cost import median_seconds
  from jaxlocal.parallel.mesh import MeshSpec
  from jaxlocal.parallel.pipeline import Pipeline, delayed_schedule
  from jaxlocal.parallel.stages import stages_of
  staged = stages_of(learner, bounds)
  pipe = Pipeline(staged, MeshSpec(stage=n).make())
  take = lambda m: jax.tree.map(lambda a: a[m], batches)
  inputs = [jax.device_put(take(m), pipe.input_sharding()) for m in range(len(batches['label']))]
  key = jax.random.key(0)
  states = staged.split(state)
  sums = pipe.zero_sums(pipe.place(states), take(0))

  def run(_):
    placed = pipe.place(states)
    zero = [jax.tree.map(lambda x: x * 0, s) for s in sums]
    return pipe.run(placed, zero, lambda m: inputs[m], len(inputs), key)[0]

  final = jax.device_get(run(None))
  seconds, _ = median_seconds(run, None, repeats=repeats)
  reference, _ = jax.jit(functools.partial(delayed_schedule, staged))(states, batches, key)
  return seconds, max_difference(final, jax.device_get(reference))


def main(argv):
  del argv
  import jax
  if FLAGS.cpu_devices:
    jax.config.update('jax_num_cpu_devices', FLAGS.cpu_devices)
  import jax.numpy as jnp
  from common import device_name, learner_of, random_batch, report
  from jaxlocal.parallel.cost import balanced_bounds

  config = FLAGS.config
  if FLAGS.optimizer:
    config.optimizer, config.momentum = FLAGS.optimizer, 0.9
  batch_size = FLAGS.batch_size or config.batch_size
  learner, info = learner_of(config)
  micro = [random_batch(info, batch_size, seed=m) for m in range(FLAGS.microbatches)]
  batches = jax.tree.map(lambda *b: jnp.stack(b), *micro)
  state = jax.jit(learner.init)(jax.random.key(1), micro[0]['image'][:2])
  counts = [int(n) for n in FLAGS.devices if int(n) <= jax.device_count()]
  rows, base = [], {}
  examples = FLAGS.microbatches * batch_size
  one_device = None
  for n in counts:
    seconds, final = data_parallel_row(learner, state, batches, n, FLAGS.repeats)
    one_device = final if n == 1 else one_device
    base.setdefault('data', seconds)
    rows.append({'mode': 'data', 'devices': n, 'examples_per_s': examples / seconds,
                 'speedup': base['data'] / seconds,
                 'max_param_diff': max_difference(final, one_device),
                 'checked_against': '1 device'})
  if learner.stage_step is not None:
    for n in counts:
      if n > len(learner.block_names):
        continue
      bounds = balanced_bounds(learner, state, micro[0], jax.random.key(0), n)
      seconds, diff = block_parallel_row(learner, state, batches, n, FLAGS.repeats, bounds)
      base.setdefault('block', seconds)
      rows.append({'mode': f'block {bounds}', 'devices': n, 'examples_per_s': examples / seconds,
                   'speedup': base['block'] / seconds, 'max_param_diff': diff,
                   'checked_against': 'delayed schedule, 1 device'})
  note = ('simulated CPU devices share the same cores: speed-ups are NOT meaningful here, the '
          'equality checks are' if jax.default_backend() == 'cpu' and jax.device_count() > 1
          else '')
  name = config.get('model', config.method)
  report(f'scaling: {config.method} {name}, global batch {batch_size}, {FLAGS.microbatches} '
         f'batches per pass, {device_name()}' + (f'\n\nNOTE: {note}' if note else ''),
         ['mode', 'devices', 'examples_per_s', 'speedup', 'max_param_diff', 'checked_against'],
         rows, FLAGS.json, note=note, batch_size=batch_size)


if __name__ == '__main__':
  app.run(main)
