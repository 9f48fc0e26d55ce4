"""The two ways to get a convolution's kernel gradient, timed on the same shapes in one run.

``jaxlocal.models.convolution`` computes ∂L/∂W by one matmul per kernel row on CPU instead of
XLA's backprop-filter convolution. This times both (and the forward convolution, for scale) on
the 3×3 stride-1 convolutions of VGG8B on CIFAR-10, the net's own and its sim projections, and
reports medians and each path's GFLOP/s.

  python benchmarks/conv_kernel_grad.py --batch_size=32
  python benchmarks/conv_kernel_grad.py --layers=32x128x256,16x256x512 --repeats=5

Run time: per layer three compilations, each with a warm-up and ``--repeats`` calls; a layer
starts only within ``--max_seconds`` of the start (default 240).
"""

import jax
from absl import app, flags

from common import TimeBudget, define_max_seconds_flag, report
from jaxlocal.models import convolution
from jaxlocal.parallel.cost import median_seconds

# (size, Cin, Cout) of VGG8B's 3×3 convolutions (and the sim projections, Cout = Cin) on 32×32.
VGG8B = ['32x3x128', '32x128x256', '32x256x256', '16x256x256', '16x256x512', '16x512x512',
         '8x512x512', '4x512x512']
flags.DEFINE_list('layers', VGG8B, 'Convolutions as <size>x<Cin>x<Cout> (square input, 3×3).')
flags.DEFINE_integer('batch_size', 32, 'Batch size.')
flags.DEFINE_integer('repeats', 3, 'Timed calls per path (the median is reported).')
define_max_seconds_flag()
flags.DEFINE_string('json', 'conv_kernel_grad.json', 'Where to write the results.')
FLAGS = flags.FLAGS

PADDING = ((1, 1), (1, 1))


def compiled_median(fn, *args, repeats: int) -> float:
  """Median seconds of the jitted ``fn(*args)`` (compiled by the first, untimed call)."""
  return median_seconds(jax.jit(fn), *args, repeats=repeats)[0]


def main(argv):
  del argv
  rows, budget = [], TimeBudget(FLAGS.max_seconds)
  for layer in FLAGS.layers:
    if not budget.allows(layer):
      continue
    size, cin, cout = (int(v) for v in layer.split('x'))
    keys = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(keys[0], (FLAGS.batch_size, size, size, cin))
    kernel = jax.random.normal(keys[1], (3, 3, cin, cout))
    dy = jax.random.normal(keys[2], (FLAGS.batch_size, size, size, cout))
    grad = dict(strides=(1, 1), padding=PADDING)
    times = {
        'forward': compiled_median(lambda x, k: convolution.conv(x, k, (1, 1), PADDING),
                                   x, kernel, repeats=FLAGS.repeats),
        'xla': compiled_median(lambda x, d, k: convolution.kernel_grad_by_xla(x, d, k, **grad),
                               x, dy, kernel, repeats=FLAGS.repeats),
        'matmuls': compiled_median(
            lambda x, d, k: convolution.kernel_grad_by_matmuls(x, d, k, **grad),
            x, dy, kernel, repeats=FLAGS.repeats),
    }
    gflop = 2 * FLAGS.batch_size * size * size * 9 * cin * cout / 1e9
    rows.append({'layer': layer, 'forward_s': times['forward'], 'xla_grad_s': times['xla'],
                 'matmul_grad_s': times['matmuls'],
                 'forward_GFLOPs': gflop / times['forward'],
                 'xla_grad_GFLOPs': gflop / times['xla'],
                 'matmul_grad_GFLOPs': gflop / times['matmuls'],
                 'speedup': times['xla'] / times['matmuls']})
  report(f'conv kernel gradient, batch {FLAGS.batch_size}, median of {FLAGS.repeats} calls',
         list(rows[0]), rows, FLAGS.json, skipped=budget.skipped)


if __name__ == '__main__':
  app.run(main)
