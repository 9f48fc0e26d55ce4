"""The contrastive hinge loss's gradient two ways, alone and inside SSL encoder steps, in one run.

``jaxlocal.objectives.contrastive.l1_distances`` computes the gradient of the (B, B) L1
distances over blocks of anchor rows (``l1_distances_vjp``) instead of by autodiff, which keeps
a (B, B, D) tensor. This times the hinge loss with its gradient for both views at each batch
size, and one encoder train step of each SSL row (the loop's step: state donated), both ways,
with XLA's temporary memory; reports medians and the speed-up.

  python benchmarks/contrastive_hinge.py
  python benchmarks/contrastive_hinge.py --batch_sizes=1000 --rows=e2e_bp,gll_bp@0,gll_rf@1,e2e_dtp
  python benchmarks/contrastive_hinge.py --experiment=cifar --rows=gll_bp@0 --batch_sizes=500

Run time: per row two compilations, each with a warm-up and ``--repeats`` calls; a row starts
only within ``--max_seconds`` of the start (default 240).
"""

import contextlib
from unittest import mock

import jax
from absl import app, flags

from common import SSL_EXPERIMENTS, TimeBudget, define_max_seconds_flag, report, ssl_encoder
from jaxlocal.objectives import contrastive
from jaxlocal.parallel.cost import median_seconds, step_seconds

flags.DEFINE_list('batch_sizes', ['250', '500', '1000'], 'Anchors per batch (2B views).')
flags.DEFINE_integer('embedding', 64, 'Embedding width D of the loss-only rows.')
flags.DEFINE_enum('experiment', 'hinge_fmnist_to_mnist', sorted(SSL_EXPERIMENTS),
                  'SSL experiment whose rows are timed (configs/ssl_<experiment>.py).')
flags.DEFINE_list('rows', ['e2e_bp', 'gll_bp@1', 'gll_rf@1'], 'Encoder rows to time one step '
                  'of (<row>@<layer>: that layer active), each at every batch size; empty = the '
                  'loss alone.')
flags.DEFINE_integer('repeats', 5, 'Timed calls per path (the median is reported).')
define_max_seconds_flag()
flags.DEFINE_string('json', 'contrastive_hinge.json', 'Where to write the results.')
FLAGS = flags.FLAGS

PATHS = ('autodiff', 'blocked')


@contextlib.contextmanager
def gradient_path(path: str):
  """Traces the hinge loss with ``path``'s gradient: 'blocked' (the library's) or 'autodiff'
  (the undecorated distance function, differentiated by JAX)."""
  if path == 'blocked':
    yield
    return
  with mock.patch.object(contrastive, 'l1_distances', contrastive.l1_distances.fun):
    yield


def time_loss(batch_size: int, path: str) -> tuple[float, float]:
  """Median seconds and temporary MiB of the hinge loss and its gradient for both views."""
  z_a, z_b = jax.random.normal(jax.random.key(0), (2, batch_size, FLAGS.embedding))
  loss = lambda a, b: contrastive.contrastive_hinge(a, b, m1=1.0, m2=1.5, grad_block=False)
  with gradient_path(path):
    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(z_a, z_b).compile()
  seconds, _ = median_seconds(compiled, z_a, z_b, repeats=FLAGS.repeats)
  return seconds, compiled.memory_analysis().temp_size_in_bytes / 2**20


def time_encoder_step(row: str, batch_size: int, path: str) -> tuple[float, float]:
  """Median seconds and temporary MiB of one encoder train step of ``row`` (``<row>@<layer>``:
  that layer active in a greedy row) on random images of its input shape."""
  learner, state, batch = ssl_encoder(FLAGS.experiment, row, batch_size)
  key = jax.random.key(1)
  with gradient_path(path):
    compiled = jax.jit(learner.train_step, donate_argnums=0).lower(state, batch, key).compile()
  seconds, _ = step_seconds(compiled, state, batch, key, repeats=FLAGS.repeats)
  return seconds, compiled.memory_analysis().temp_size_in_bytes / 2**20


def main(argv):
  del argv
  rows, budget = [], TimeBudget(FLAGS.max_seconds)
  for batch_size in (int(b) for b in FLAGS.batch_sizes):
    for what in ['loss + gradient', *FLAGS.rows]:
      if not budget.allows(f'{what} at batch {batch_size}'):
        continue
      row = {'what': what, 'batch': batch_size}
      for path in PATHS:
        seconds, memory = (time_loss(batch_size, path) if what == 'loss + gradient'
                           else time_encoder_step(what, batch_size, path))
        row.update({f'{path}_s': seconds, f'{path}_temp_MiB': memory})
      row['speedup'] = row['autodiff_s'] / row['blocked_s']
      rows.append(row)
  report(f'contrastive hinge gradient, autodiff vs blocked (D = {FLAGS.embedding} for the loss '
         f'alone; encoder rows of {FLAGS.experiment}), median of {FLAGS.repeats} calls',
         list(rows[0]), rows, FLAGS.json, skipped=budget.skipped)


if __name__ == '__main__':
  app.run(main)
