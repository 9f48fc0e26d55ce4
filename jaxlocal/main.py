"""Command line: ``python -m jaxlocal.main --config=configs/<x>.py --workdir=<dir>``.

Any config field can be overridden as ``--config.<field>=<value>``. The logic lives in
:mod:`jaxlocal.experiment`, so it can be imported and tested without this entry point; errors are
reported by :mod:`jaxlocal.cli` (one line, exit status 2 for bad input, 1 for a failed run).
"""

from absl import app, flags, logging
from ml_collections import config_flags

from jaxlocal import cli, determinism, experiment
from jaxlocal.config_lib import ConfigError
from jaxlocal.parallel.mesh import initialize_distributed

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Path to an ml_collections config file.',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics.jsonl and plots. '
                    'Rerunning with the same workdir resumes the run.')
flags.DEFINE_bool('allow_config_change', False, 'Continue a workdir\'s run with config values '
                  'that differ from its config.json (recorded in config_history.jsonl).')
flags.DEFINE_bool('debug', False, f'Show tracebacks (also: {cli.DEBUG_ENV}=1).')
flags.mark_flags_as_required(['config'])


def _loaded_config():
  """FLAGS.config; a config file that cannot be loaded is a usage error naming it."""
  try:
    config = FLAGS.config
    config.keys()  # ml_collections defers a load error to the first attribute access
    return config
  except OSError as error:
    reason = [line.strip() for line in str(error).splitlines() if line.strip()][-1]
    raise ConfigError(f'cannot load the config file: {reason}') from error


def main(argv):
  debug = FLAGS.debug or cli.debug_requested([])
  with cli.reported_errors(debug):
    if len(argv) > 1:
      raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    logging.set_verbosity(logging.WARNING)
    config = _loaded_config()
    determinism.require(config.get('deterministic', False))  # before any backend starts
    initialize_distributed(config)  # multi-host: before anything touches a device
    workdir = FLAGS.workdir or f'runs/{config.dataset}_{config.model}_' + (
        config.loss if 'loss' in config else config.method)
    experiment.train_and_evaluate(config, workdir,
                                  allow_config_change=FLAGS.allow_config_change)


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
