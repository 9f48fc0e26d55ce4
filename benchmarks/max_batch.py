"""The largest batch each loss trains within a memory budget: what local learning's smaller
activation memory buys a user.

For each loss of ``jaxlocal.methods.local_error`` on the config's network, the train step the
loop runs (jitted, state donated) is compiled at trial batch sizes; a batch fits when XLA's
compiled memory analysis, temporary + arguments + outputs − outputs aliased to donated
arguments (≈ temporary + arguments: parameters, optimiser state, batch), is within
``--budget_bytes``. The search (:func:`largest_batch`) interpolates the nearly affine size in
the batch and brackets the boundary exactly, in a handful of compilations per loss. Nothing is
run: on a GPU, confirm the top rows with one step at the reported batch.

  python benchmarks/max_batch.py                                   # VGG8B, 2 GiB, float32
  python benchmarks/max_batch.py --model=vgg11b --budget_bytes=4294967296 --compute_dtype=bfloat16
"""

from __future__ import annotations

from collections.abc import Callable

import jax
from absl import app, flags
from ml_collections import config_flags

from common import learner_of, report, step_bytes

config_flags.DEFINE_config_file('config', 'configs/cifar10.py', 'Config of the dataset.')
flags.DEFINE_multi_string('model', ['vgg8b'], 'Networks (config.model values); repeat the flag '
                          'for several.')
flags.DEFINE_list('losses', ['glob', 'pred', 'predsim', 'pred+bpf', 'predsim+bpf'],
                  'Losses; "+bpf" = the backprop-free variant. The first is the baseline.')
flags.DEFINE_integer('budget_bytes', 2 * 2**30, 'Memory budget in bytes.')
flags.DEFINE_string('compute_dtype', 'float32', 'float32 or bfloat16.')
flags.DEFINE_integer('start', 128, 'First batch size tried.')
flags.DEFINE_integer('limit', 16384, 'Largest batch size considered.')
flags.DEFINE_string('json', 'max_batch.json', 'Where to write the results.')
FLAGS = flags.FLAGS


def largest_batch(size: Callable[[int], int], budget: int, *, start: int = 128,
                  limit: int = 16384) -> int:
  """The largest batch b in [1, limit] with ``size(b) <= budget`` (0 if none), for a size that
  grows with b.

  Each probe is the linear interpolation of the two evaluated sizes nearest the bracket,
  clamped inside it (so the bracket always shrinks); after two probes that did not halve the
  bracket, a bisection (doubling while no batch has failed yet). An affine size is found in
  about four evaluations.
  """
  lo, hi = 0, limit + 1            # lo fits (0: the empty batch), hi does not (past the limit)
  sizes: dict[int, int] = {}
  probe, slow = min(max(start, 1), limit), 0
  while hi - lo > 1:
    width = hi - lo
    sizes[probe] = size(probe)
    if sizes[probe] <= budget:
      lo = probe
    else:
      hi = probe
    slow = slow + 1 if 2 * (hi - lo) > width else 0
    known = sorted(sizes, key=lambda b: min(abs(b - lo), abs(b - hi)))[:2]
    if slow >= 2 or len(known) < 2 or sizes[known[0]] == sizes[known[1]]:
      guess = (lo + hi) // 2 if hi <= limit else 2 * lo
      slow = 0
    else:
      (b1, s1), (b2, s2) = ((b, sizes[b]) for b in known)
      guess = b1 + int((budget - s1) * (b2 - b1) // (s2 - s1))
    probe = min(max(guess, lo + 1), hi - 1)
  return lo


def main(argv):
  del argv
  rows = []
  for model in FLAGS.model:
    base = None
    for name in FLAGS.losses:
      config = FLAGS.config
      loss, _, bpf = name.partition('+')
      config.model, config.loss, config.bpf = model, loss, bpf == 'bpf'
      config.compute_dtype = FLAGS.compute_dtype
      learner, info = learner_of(config)
      measured = {}

      def size(batch_size):
        measured[batch_size] = step_bytes(learner, info, batch_size)
        return measured[batch_size]['total']

      best = largest_batch(size, FLAGS.budget_bytes, start=FLAGS.start, limit=FLAGS.limit)
      at = measured.get(best, {'total': 0, 'temp': 0, 'argument': 0})
      row = {'model': model, 'loss': name, 'max_batch': best,
             'total_MiB': at['total'] / 2**20, 'temp_MiB': at['temp'] / 2**20,
             'argument_MiB': at['argument'] / 2**20, 'compilations': len(measured)}
      base = base or row
      row['batch_vs_first'] = best / base['max_batch'] if base['max_batch'] else float('nan')
      rows.append(row)
      print(row, flush=True)
  report(f'largest batch within {FLAGS.budget_bytes / 2**30:.3g} GiB (compiled temporary + '
         f'argument memory of the donated train step), {FLAGS.compute_dtype}, '
         f'{jax.default_backend()}',
         ['model', 'loss', 'max_batch', 'batch_vs_first', 'total_MiB', 'temp_MiB', 'argument_MiB',
          'compilations'], rows, FLAGS.json, budget_bytes=FLAGS.budget_bytes,
         compute_dtype=FLAGS.compute_dtype)


if __name__ == '__main__':
  app.run(main)
