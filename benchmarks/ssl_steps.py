"""Images/s of self-supervised encoder train steps, per row and per active layer, in one process.

Times the encoder phase's jitted step (two views of every image, the row's loss and update
rule, state donated as the loop runs it) on random images of the experiment's input shape.
A layer-wise row is timed with each requested layer active (``gll_bp@1``: layer 1). Medians,
and each row's speed relative to the first.

  python benchmarks/ssl_steps.py --rows=e2e_bp,gll_bp@0,gll_bp@1,gll_bp@2,gll_rf@1,e2e_dtp
  python benchmarks/ssl_steps.py --experiment=cifar --rows=gll_bp@0,gll_bp@4 --batch_size=500

To compare two checkouts, run this file with PYTHONPATH set to each checkout's root.

Run time: per row one compilation, a warm-up and ``--repeats`` steps; a row starts only within
``--max_seconds`` of the start (default 240), so a run lasts at most that plus one row.
"""

import jax
from absl import app, flags

from common import SSL_EXPERIMENTS, TimeBudget, define_max_seconds_flag, report, ssl_encoder
from jaxlocal.parallel.cost import step_seconds

flags.DEFINE_enum('experiment', 'hinge_fmnist_to_mnist', sorted(SSL_EXPERIMENTS),
                  'SSL experiment (configs/ssl_<experiment>.py).')
flags.DEFINE_list('rows', ['e2e_bp', 'gll_bp@0', 'gll_bp@1', 'gll_bp@2', 'e2e_dtp'],
                  'Rows of the experiment, "<row>@<layer>" for a layer-wise row\'s active layer.')
flags.DEFINE_integer('batch_size', 0, 'Images per step (2 views each); 0 = the row\'s own.')
flags.DEFINE_integer('repeats', 3, 'Timed steps per row (the median is reported).')
define_max_seconds_flag()
flags.DEFINE_string('json', 'ssl_steps.json', 'Where to write the results.')
FLAGS = flags.FLAGS


def time_row(spec: str) -> dict:
  learner, state, batch = ssl_encoder(FLAGS.experiment, spec, FLAGS.batch_size)
  seconds, _ = step_seconds(jax.jit(learner.train_step, donate_argnums=0), state, batch,
                            jax.random.key(1), repeats=FLAGS.repeats)
  batch_size = batch['image'].shape[0] // 2
  return {'row': spec, 'batch': batch_size, 'median_step_s': seconds,
          'images_per_s': batch_size / seconds}


def main(argv):
  del argv
  budget = TimeBudget(FLAGS.max_seconds)
  rows = [time_row(spec) for spec in FLAGS.rows if budget.allows(spec)]
  for row in rows:
    row['speed_vs_first'] = rows[0]['median_step_s'] / row['median_step_s']
  report(f'SSL encoder steps ({FLAGS.experiment}), median of {FLAGS.repeats}', list(rows[0]),
         rows, FLAGS.json, skipped=budget.skipped)


if __name__ == '__main__':
  app.run(main)
