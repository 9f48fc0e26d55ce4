"""Command line: ``python -m jaxlocal.main --config=configs/<x>.py --workdir=<dir>``.

Any config field can be overridden as ``--config.<field>=<value>``. The logic lives in
:mod:`jaxlocal.train`, so it can be imported and tested without this entry point.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from jaxlocal import determinism, train
from jaxlocal.parallel.mesh import initialize_distributed

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Path to an ml_collections config file.',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics.jsonl and plots. '
                    'Rerunning with the same workdir resumes the run.')
flags.mark_flags_as_required(['config'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.set_verbosity(logging.WARNING)
  determinism.require(FLAGS.config.get('deterministic', False))  # before any backend starts
  initialize_distributed(FLAGS.config)  # multi-host: before anything touches a device
  workdir = FLAGS.workdir or f'runs/{FLAGS.config.dataset}_{FLAGS.config.model}_{FLAGS.config.loss}'
  train.train_and_evaluate(FLAGS.config, workdir)


if __name__ == '__main__':
  app.run(main)
