"""Per-block cost of local training: each block's forward + local loss + update, alone, on the
activations the blocks below it produce, against the whole jitted step in the same process.

Each block is compiled as its own step (one pipeline stage per block,
:func:`jaxlocal.parallel.cost.stage_seconds`); the whole step is the learner's ``train_step``.
Every step runs as the training loop runs it, its state donated
(:func:`jaxlocal.parallel.cost.step_seconds`). Medians of ``--repeats`` calls after a warm-up.
"sum of blocks / whole step" above 1 is the saving of fusing every block into one step (fewer dispatches, XLA scheduling across blocks);
block-parallel training on S devices is bounded by the slowest stage. The whole step's row also
gives its TFLOP/s and fraction of the device's peak (``common.flop_rate``: FLOPs counted from
the step's jaxpr).

Run time: one compilation per block and one for the whole step (on a GPU, XLA autotunes each
convolution then), each followed by a warm-up and ``--repeats`` calls; nothing else. The
config's own network is all it times, so the run is bounded by its size: no time flag.

  python benchmarks/block_throughput.py --config=configs/predsim_vgg8b.py --batch_size=32
  python benchmarks/block_throughput.py --config=configs/cifar10.py:vgg11b --batch_size=32
  python benchmarks/block_throughput.py --config=configs/mnist.py:mlp
  python benchmarks/block_throughput.py --config=configs/al_mnist.py:cnn
  python benchmarks/block_throughput.py --config=configs/hebbian_mnist.py
"""

import jax
from absl import app, flags
from ml_collections import config_flags

from common import device_name, flop_rate, learner_of, random_batch, report
from jaxlocal.parallel.cost import stage_seconds, step_seconds
from jaxlocal.parallel.stages import stages_of

config_flags.DEFINE_config_file('config', 'configs/predsim_vgg8b.py', 'Config of the network.')
flags.DEFINE_integer('batch_size', 0, 'Batch size (0: the config\'s).')
flags.DEFINE_integer('repeats', 5, 'Timed calls per measurement (the median is reported).')
flags.DEFINE_float('peak_tflops', 0.0, 'Dense peak in TFLOP/s for the compute dtype; 0 = '
                   'jaxlocal.flops.PEAK_TFLOPS by device kind.')
flags.DEFINE_string('json', 'block_throughput.json', 'Where to write the results.')
FLAGS = flags.FLAGS


def main(argv):
  del argv
  config = FLAGS.config
  # the Hebbian rule's own batch (learner_of times the rule's learner)
  batch_size = FLAGS.batch_size or (config.hebbian.batch_size if config.method == 'hebbian'
                                    else config.batch_size)
  learner, info = learner_of(config)
  batch = random_batch(info, batch_size)
  if config.method == 'hebbian':
    batch['image'] = abs(batch['image'])
  key = jax.random.key(0)
  state = jax.jit(learner.init)(key, batch['image'][:2])
  whole, _ = step_seconds(jax.jit(learner.train_step, donate_argnums=0), state, batch, key,
                          repeats=FLAGS.repeats)
  rows = []
  if learner.stage_step is not None:
    per_block = stages_of(learner, range(1, len(learner.block_names)))
    seconds = stage_seconds(per_block, per_block.split(state), batch, key, repeats=FLAGS.repeats)
    for name, s in zip(learner.block_names, seconds):
      rows.append({'block': name, 'median_ms': 1e3 * s, 'examples_per_s': batch_size / s,
                   'share_of_sum': s / sum(seconds)})
    rows.append({'block': 'sum of blocks', 'median_ms': 1e3 * sum(seconds),
                 'examples_per_s': batch_size / sum(seconds), 'share_of_sum': 1.0})
  rows.append({'block': 'whole step (one jit)', 'median_ms': 1e3 * whole,
               'examples_per_s': batch_size / whole,
               **flop_rate(learner.train_step, (state, batch, key), whole, batch_size,
                           config.get('compute_dtype', 'float32'), FLAGS.peak_tflops)})
  if learner.stage_step is not None:
    rows[-1]['share_of_sum'] = whole / sum(seconds)
  name = (f'{config.hebbian.hidden[0]}-unit layer' if config.method == 'hebbian'
          else config.get('model', config.method))
  report(f'{config.method} {name} on {config.dataset} shapes, batch {batch_size}, '
         f'{device_name()}, median of {FLAGS.repeats}',
         ['block', 'median_ms', 'examples_per_s', 'share_of_sum', 'TFLOP_per_s']
         + (['fraction_of_peak'] if 'fraction_of_peak' in rows[-1] else []), rows, FLAGS.json,
         batch_size=batch_size, method=config.method, model=name)


if __name__ == '__main__':
  app.run(main)
